//! What every NetSuite request costs before it leaves the process: the OAuth 1.0 signature
//! (per `tokeninfo`/`revoketoken` call), the NLAuth header and the TOTP code (per `issuetoken`).
//! Target (docs/performance.md): the signer above 200,000 signatures per second on one core.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netsuite_token_rotator::netsuite::{
    AccountId, NlauthLogin, TbaCredentials, authorization_header, nlauth_header, totp_code,
};
use secrecy::SecretString;

fn credentials() -> TbaCredentials {
    TbaCredentials {
        consumer_key: SecretString::from(
            "ef40afdd8abaac111b13825dd5e5e2ddddb44f86d5a0dd6dcf38c20aae6b67e4",
        ),
        consumer_secret: SecretString::from(
            "d26ad321a4b2f23b0741c8d38392ce01c3e23e109df6c96eac6d099e9ab9a8f5",
        ),
        token_id: "2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc".into(),
        token_secret: SecretString::from(
            "c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295",
        ),
    }
}

fn oauth1(c: &mut Criterion) {
    let creds = credentials();
    let mut group = c.benchmark_group("oauth1");
    group.throughput(Throughput::Elements(1));
    group.bench_function("authorization_header/tokeninfo", |b| {
        b.iter(|| {
            authorization_header(
                black_box("GET"),
                black_box("https://123456-sb1.restlets.api.netsuite.com/rest/tokeninfo"),
                black_box("123456_SB1"),
                &creds,
                black_box(1_764_000_000),
                black_box("kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgm"),
            )
            .unwrap()
        })
    });
    group.bench_function("authorization_header/with_query", |b| {
        b.iter(|| {
            authorization_header(
                black_box("GET"),
                black_box(
                    "https://123456-sb1.restlets.api.netsuite.com/app/site/hosting/restlet.nl?script=customscript_sync&deploy=1&q=a%20b",
                ),
                black_box("123456_SB1"),
                &creds,
                black_box(1_764_000_000),
                black_box("kYjzVBB8Y0ZFabxSWbWovY3uYSQ2pTgm"),
            )
            .unwrap()
        })
    });
    group.finish();
}

fn nlauth(c: &mut Criterion) {
    let account = AccountId::parse("123456_SB1").unwrap();
    let login = NlauthLogin {
        email: "integration@example.com".into(),
        password: SecretString::from("correct horse, battery & staple"),
        role: "1001".into(),
        totp_secret: None,
    };
    c.bench_function("nlauth_header", |b| {
        b.iter(|| nlauth_header(black_box(&account), black_box(&login), black_box(None)))
    });
    c.bench_function("nlauth_header/with_otp", |b| {
        b.iter(|| {
            nlauth_header(
                black_box(&account),
                black_box(&login),
                black_box(Some("123456")),
            )
        })
    });
}

fn totp(c: &mut Criterion) {
    let secret = SecretString::from("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP");
    c.bench_function("totp_code", |b| {
        b.iter(|| totp_code(black_box(&secret), black_box(1_764_000_000)).unwrap())
    });
}

criterion_group!(benches, oauth1, nlauth, totp);
criterion_main!(benches);

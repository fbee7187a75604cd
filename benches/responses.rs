//! Reading NetSuite's answers: the JSON bodies of `issuetoken`, `tokeninfo` and
//! `datacenterurls`, and the early refusal of an HTML error page.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use netsuite_token_rotator::netsuite::bench_api::{
    parse_datacenter_urls, parse_issued_token, parse_token_info,
};

const JSON: &str = "application/json; charset=utf-8";

const ISSUED: &[u8] = br#"{"tokenId":"2b0ce516420110bcbd36b69e99196d1b7f6de3c6234c5afb799b73d87569f5cc","tokenSecret":"c29a677df7d5439a458c063654187e3d678d73aca8e3c9d8bea1478a3eb0d295"}"#;
const TOKEN_INFO: &[u8] = br#"{"companyName":"Example Manufacturing (Sandbox 2)","companyId":"123456_SB1","roleName":"Token Rotation","roleId":1001,"entityId":"42","extra":{"nested":[1,2,3]}}"#;
const DATACENTER: &[u8] = br#"{"restDomain":"https://123456-sb1.restlets.api.netsuite.com","webservicesDomain":"https://123456-sb1.suitetalk.api.netsuite.com","systemDomain":"https://123456-sb1.app.netsuite.com"}"#;
const HTML: &[u8] = b"<!DOCTYPE html><html><body>Service unavailable</body></html>";

fn responses(c: &mut Criterion) {
    let mut group = c.benchmark_group("response");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issuetoken", |b| {
        b.iter(|| parse_issued_token(black_box(ISSUED), JSON).unwrap())
    });
    group.bench_function("tokeninfo", |b| {
        b.iter(|| parse_token_info(black_box(TOKEN_INFO), JSON).unwrap())
    });
    group.bench_function("datacenterurls", |b| {
        b.iter(|| parse_datacenter_urls(black_box(DATACENTER), JSON).unwrap())
    });
    group.bench_function("html_refused", |b| {
        b.iter(|| parse_token_info(black_box(HTML), "text/html").unwrap_err())
    });
    group.finish();
}

criterion_group!(benches, responses);
criterion_main!(benches);

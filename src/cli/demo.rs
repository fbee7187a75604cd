//! `demo`: the whole rotation protocol with no setup. It starts the NetSuite simulator in this
//! process, keeps the token in a file store under `./demo-data`, imports a "hand-made" token
//! the way an operator would on day one, then rotates on a fast schedule and prints every step
//! so a newcomer can follow what the daemon does. `demo --m2m` does the same with an OAuth 2.0
//! client-credentials certificate: an administrator's first upload, imported, then rotated
//! through the certificate endpoint.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;

use crate::cli::out::{self, errln, outln};
use crate::netsuite::{AccountId, ClientOptions, Endpoint, NetSuiteClient, NlauthLogin};
use crate::outcome::Outcome;
use crate::plural;
use crate::rotation::{
    Credential, Engine, Event, EventSink, Expectations, Integration, M2m, RotationError, Tba,
};
use crate::secret::{SecretString, short_id};
use crate::sim::{self, Simulator, demo};
use crate::store::file::{FileStore, FileStoreConfig};

/// The demo's grace window: short, so each rotation revokes the token two rotations back.
const DEMO_REVOKE_AFTER: Duration = Duration::from_secs(1);

pub async fn run(
    rotations: Option<u32>,
    data_dir: &Path,
    interval_secs: u64,
    m2m: bool,
) -> Outcome {
    crate::telemetry::init_logging(crate::config::LogFormat::Text, "warn");
    match demo(
        rotations,
        data_dir,
        Duration::from_secs(interval_secs.max(1)),
        m2m,
    )
    .await
    {
        Ok(()) => Outcome::Ok,
        Err(e) => {
            errln!("demo failed: {e}");
            Outcome::Failed
        }
    }
}

async fn demo(
    rotations: Option<u32>,
    data_dir: &Path,
    interval: Duration,
    m2m: bool,
) -> Result<(), String> {
    let seed = sim::Seed::demo();
    let simulator = Simulator::start(seed)
        .await
        .map_err(|e| format!("cannot start the simulator: {e}"))?;
    let store_path = data_dir.join(match m2m {
        true => "demo-m2m-integration.json",
        false => "demo-integration.json",
    });
    reset_demo_store(&store_path)?;

    outln!("netsuite-token-rotator demo");
    outln!("  NetSuite simulator   {}", simulator.base_url());
    outln!(
        "  account / role       {} / {}",
        demo::ACCOUNT,
        demo::ROLE_ID
    );
    outln!("  file store           {}", store_path.display());
    outln!(
        "  grace window         {}s (then the replaced token is revoked)",
        DEMO_REVOKE_AFTER.as_secs()
    );
    outln!();

    let integration = match m2m {
        true => demo_m2m_integration(&simulator.base_url(), DEMO_REVOKE_AFTER),
        false => demo_integration(&simulator.base_url(), DEMO_REVOKE_AFTER),
    };
    let client = NetSuiteClient::new(ClientOptions::default()).map_err(|e| e.to_string())?;
    let store = Arc::new(FileStore::new(&FileStoreConfig {
        path: store_path.clone(),
    }));
    let engine = Engine::new(Arc::new(integration), client, store, Arc::new(Narrator));

    match m2m {
        true => import_first_certificate(&simulator, &engine).await?,
        false => import_hand_made_token(&simulator, &engine).await?,
    }

    let mut done = 0u32;
    // The demo only narrates: once nobody reads it (`demo | head -3`), it stops between two
    // rotations (never inside one) and ends quietly.
    while rotations.is_none_or(|n| done < n) && !out::stdout_closed() {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = tokio::signal::ctrl_c() => { outln!("\ninterrupted"); break; }
        }
        done += 1;
        outln!(
            "\nrotation {done}{}",
            rotations.map_or(String::new(), |n| format!(" of {n}"))
        );
        let rotated = engine.rotate().await.map_err(|e| e.to_string())?;
        outln!(
            "  readers of {} now get {} {}",
            store_path.display(),
            if m2m { "certificate" } else { "token" },
            short_id(&rotated.token_id)
        );
    }

    if out::stdout_closed() {
        simulator.shutdown().await;
        return Ok(());
    }
    outln!("\nwaiting out the last grace window, then revoking the replaced token");
    tokio::time::sleep(DEMO_REVOKE_AFTER).await;
    match engine.revoke_due(false).await {
        Ok(_) => {}
        Err(RotationError::NetSuite { source, .. }) => return Err(source.to_string()),
        Err(e) => return Err(e.to_string()),
    }

    let inspection = simulator.sim().inspect();
    let (what, made, active) = match m2m {
        false => (
            "token",
            inspection.tokens.len(),
            inspection.tokens.iter().filter(|t| t.is_active()).count(),
        ),
        true => (
            "certificate",
            inspection.certificates.len(),
            inspection
                .certificates
                .iter()
                .filter(|c| c.is_active())
                .count(),
        ),
    };
    outln!(
        "\nsimulator: {} made, {active} active, {} revoked",
        plural::count(made, what),
        made - active
    );
    if m2m {
        // What a reader does: take the record from the store and get an access token with it.
        engine.verify_current().await.map_err(|e| e.to_string())?;
        outln!(
            "a reader of {} built an assertion with the stored key and got an access token",
            store_path.display()
        );
    }
    simulator.shutdown().await;
    if active != 1 {
        return Err(format!(
            "expected exactly one active {what} at the end, found {active}"
        ));
    }
    outln!(
        "done after {}: one live {what}, in the store; every other revoked",
        plural::count(done as usize, "rotation")
    );
    Ok(())
}

/// Day one of a TBA integration: an administrator made a token by hand; import it.
async fn import_hand_made_token(simulator: &sim::SimHandle, engine: &Engine) -> Result<(), String> {
    outln!("day one: an administrator made a token by hand in NetSuite; import it");
    let (token_id, token_secret) = simulator
        .sim()
        .create_token(&sim::HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: demo::EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "made by hand".into(),
        })
        .map_err(|e| format!("simulator refused the hand-made token: {e}"))?;
    engine
        .import(token_id, token_secret)
        .await
        .map_err(|e| e.to_string())
}

/// Day one of an M2M integration: an administrator uploaded the mapping's first certificate;
/// import its ID, key and certificate.
async fn import_first_certificate(
    simulator: &sim::SimHandle,
    engine: &Engine,
) -> Result<(), String> {
    use crate::netsuite::m2m::{KeyKind, generate_certificate};
    outln!(
        "day one: an administrator uploaded the first certificate of the M2M mapping; import it"
    );
    let first = generate_certificate(
        KeyKind::EcP256,
        "made by hand",
        Duration::from_secs(365 * 86_400),
    )?;
    let certificate_id = simulator
        .sim()
        .upload_certificate(&sim::AdminCertificate {
            client_id: demo::M2M_CLIENT_ID.into(),
            entity: demo::ENTITY_ID.into(),
            role: demo::ROLE_ID.into(),
            pem: first.certificate.clone(),
        })
        .map_err(|e| format!("simulator refused the first certificate: {e}"))?;
    engine
        .import_certificate(certificate_id, first.private_key, Some(first.certificate))
        .await
        .map_err(|e| e.to_string())
}

/// The M2M integration of the simulator's demo seed, reached at `base_url`.
pub fn demo_m2m_integration(base_url: &str, revoke_after: Duration) -> Integration {
    use crate::netsuite::m2m::KeyKind;
    let account = AccountId::parse(demo::ACCOUNT).expect("the demo account id is valid");
    Integration {
        name: "demo-m2m-integration".into(),
        endpoint: Endpoint::m2m_for_account(&account, Some(base_url)),
        credential: Credential::M2m(M2m {
            client_id: SecretString::from(demo::M2M_CLIENT_ID),
            role: demo::ROLE_ID.into(),
            entity: demo::ENTITY_ID.into(),
            key: KeyKind::EcP256,
            certificate_validity: Duration::from_secs(365 * 86_400),
            renew_before: Duration::from_secs(30 * 86_400),
            scopes: vec!["rest_webservices".into()],
        }),
        account,
        revoke_after,
        token_name_prefix: "demo-m2m".into(),
        store_consumer_credentials: true,
    }
}

/// The integration of the simulator's demo seed, reached at `base_url`: what `demo` rotates,
/// and what tests use against `Seed::demo()`.
pub fn demo_integration(base_url: &str, revoke_after: Duration) -> Integration {
    let account = AccountId::parse(demo::ACCOUNT).expect("the demo account id is valid");
    Integration {
        name: "demo-integration".into(),
        endpoint: Endpoint::for_account(&account, Some(base_url)),
        credential: Credential::Tba(Tba {
            consumer_key: SecretString::from(demo::CONSUMER_KEY),
            consumer_secret: SecretString::from(demo::CONSUMER_SECRET),
            login: Arc::new(NlauthLogin {
                email: demo::EMAIL.into(),
                password: SecretString::from(demo::PASSWORD),
                role: demo::ROLE_ID.into(),
                totp_secret: None,
            }),
            login_gate: Arc::default(),
            expect: Arc::new(Expectations {
                company_id: Some(account.realm().to_string()),
                role_id: Some(demo::ROLE_ID.to_string()),
                entity_id: Some(demo::ENTITY_ID.to_string()),
                ..Expectations::default()
            }),
        }),
        account,
        revoke_after,
        token_name_prefix: "demo".into(),
        store_consumer_credentials: true,
    }
}

/// The demo always starts from an empty store: a token left from an earlier run belongs to a
/// simulator that no longer exists.
fn reset_demo_store(path: &Path) -> Result<(), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    for entry in entries.flatten() {
        if entry.file_name().to_string_lossy().starts_with(name) {
            let _ = std::fs::remove_file(entry.path());
        }
    }
    Ok(())
}

/// Prints each event as a numbered protocol step.
struct Narrator;

impl EventSink for Narrator {
    fn event(&self, integration: &Integration, event: &Event) {
        let (noun, proof) = match integration.m2m() {
            Some(_) => ("certificate", "a token exchange"),
            None => ("token", "tokeninfo"),
        };
        let line = match event {
            Event::IntentRecorded {
                rotation_id,
                token_name,
            } => format!(
                "  1 intent   store records rotation {} (token name {token_name:?})",
                short_id(&rotation_id.to_string())
            ),
            Event::TokenIssued { token_id, .. } if integration.m2m().is_some() => format!(
                "  2 issue    new key pair; certificate uploaded with an access token from the current one -> certificate {}",
                short_id(token_id)
            ),
            Event::TokenIssued { token_id, .. } => {
                format!(
                    "  2 issue    issuetoken (NLAuth) -> new token {}",
                    short_id(token_id)
                )
            }
            Event::TokenStaged { .. } => {
                format!("  3 stage    new {noun} written to the store as pending")
            }
            Event::TokenVerified {
                proof: "tokeninfo",
                info,
                ..
            } => format!(
                "  4 verify   tokeninfo with the new token: company {}, role {}, entity {}",
                info.company_id.as_deref().unwrap_or("?"),
                info.role_id.as_deref().unwrap_or("?"),
                info.entity_id.as_deref().unwrap_or("?")
            ),
            Event::TokenVerified { proof, .. } => format!(
                "  4 verify   {proof} with the new certificate: NetSuite granted an access token"
            ),
            Event::TokenPromoted {
                token_id,
                previous_token_id,
                revoke_after,
                ..
            } => format!(
                "  5 promote  current = {}{}",
                short_id(token_id),
                previous_token_id
                    .as_ref()
                    .map_or(String::new(), |p| format!(
                        "; previous {} kept until {}",
                        short_id(p),
                        revoke_after.format("%H:%M:%S")
                    ))
            ),
            Event::PreviousRevoked { token_id, .. } if integration.m2m().is_some() => format!(
                "  6 revoke   grace window over: certificate {} revoked through the certificate endpoint",
                short_id(token_id)
            ),
            Event::PreviousRevoked { token_id, .. } => format!(
                "  6 revoke   grace window over: revoketoken {} (the token signs its own revocation)",
                short_id(token_id)
            ),
            Event::RevokeNotDue {
                token_id,
                revoke_after,
            } => format!(
                "  6 revoke   {} stays valid until {} ({}s from now)",
                short_id(token_id),
                revoke_after.format("%H:%M:%S"),
                (*revoke_after - Utc::now()).num_seconds().max(0)
            ),
            Event::TokenImported { token_id, .. } => format!(
                "  import     {proof} accepted {}; it is now the current {noun}",
                short_id(token_id)
            ),
            other => format!("  !          {other:?}"),
        };
        outln!("{line}");
    }
}

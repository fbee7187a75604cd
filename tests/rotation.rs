//! The rotation protocol end to end against the real simulator and the real file store: the
//! happy paths, a failure at every step, recovery, import, 2FA, and integrations waiting for
//! approval. Each test checks the design's invariants afterwards.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Fixture, demo};
use netsuite_token_rotator::rotation::{
    Event, PreviousFate, RevokeOutcome, RotateOptions, RotationError, Step,
};
use netsuite_token_rotator::secret::{ExposeSecret, SecretString};
use netsuite_token_rotator::sim::{Faults, HandMadeToken, Seed};
use netsuite_token_rotator::store::StoreErrorKind;

const NO_GRACE: Duration = Duration::ZERO;
const HOUR: Duration = Duration::from_secs(3600);

fn faults_on(endpoint: &str, f: impl FnOnce(&mut Faults)) -> Faults {
    let mut faults = Faults {
        endpoints: vec![endpoint.to_string()],
        ..Faults::default()
    };
    f(&mut faults);
    faults
}

#[tokio::test]
async fn bootstrap_fills_an_empty_store_with_a_verified_token() {
    let f = Fixture::new(HOUR).await;
    let rotated = f.engine.rotate().await.expect("bootstrap rotation");
    assert!(matches!(rotated.previous, PreviousFate::None));
    let state = f.state().await;
    let current = state.current.as_ref().expect("current token");
    assert_eq!(current.id().to_string(), rotated.token_id);
    assert!(state.intent.is_none() && state.pending.is_none());
    assert_eq!(f.active_tokens().len(), 1);
    assert!(f.active_tokens().contains(current.id()));
    f.assert_invariants().await;
}

#[tokio::test]
async fn second_rotation_revokes_the_first_token_with_no_grace_window() {
    let f = Fixture::new(NO_GRACE).await;
    let first = f.engine.rotate().await.unwrap();
    let second = f.engine.rotate().await.unwrap();
    assert!(
        matches!(&second.previous, PreviousFate::Revoked { token_id } if *token_id == first.token_id),
        "{:?}",
        second.previous
    );
    let active = f.active_tokens();
    assert_eq!(active.len(), 1);
    assert!(active.contains(&second.token_id));
    let previous = f.state().await.previous.expect("previous kept as record");
    assert!(previous.revoked_at.is_some());
    f.assert_invariants().await;
}

#[tokio::test]
async fn grace_window_keeps_the_previous_token_valid_until_it_ends() {
    let f = Fixture::new(HOUR).await;
    let first = f.engine.rotate().await.unwrap();
    let second = f.engine.rotate().await.unwrap();
    assert!(matches!(second.previous, PreviousFate::RevokeAt { .. }));
    assert!(
        f.active_tokens().contains(&first.token_id),
        "still in grace"
    );

    // A third rotation would drop the previous token unrevoked: refused, nothing issued.
    let issued_before = f.token_count();
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(err, RotationError::PreviousInGrace { .. }),
        "{err}"
    );
    assert_eq!(f.token_count(), issued_before);

    assert!(matches!(
        f.engine.revoke_due(false).await.unwrap(),
        RevokeOutcome::NotDue { .. }
    ));
    assert!(f.active_tokens().contains(&first.token_id));
    assert!(matches!(
        f.engine.revoke_due(true).await.unwrap(),
        RevokeOutcome::Revoked { .. }
    ));
    assert!(!f.active_tokens().contains(&first.token_id));
    f.assert_invariants().await;
}

#[tokio::test]
async fn intent_failure_issues_nothing() {
    let f = Fixture::new(NO_GRACE).await;
    f.engine.rotate().await.unwrap();
    let before = f.state().await.current.unwrap().id().to_string();
    f.store.fail("begin_rotation", StoreErrorKind::Unavailable);
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::Store {
                step: Step::Intent,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(f.token_count(), 1, "no token issued");
    assert_eq!(f.state().await.current.unwrap().id().to_string(), before);
    f.assert_invariants().await;
}

#[tokio::test]
async fn issue_failure_leaves_the_store_as_it_was() {
    let f = Fixture::new(NO_GRACE).await;
    f.engine.rotate().await.unwrap();
    let before = f.state().await.current.unwrap().id().to_string();
    f.sim
        .sim()
        .set_faults(faults_on("issuetoken", |f| f.server_error = 1.0))
        .unwrap();
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::NetSuite {
                step: Step::Issue,
                ..
            }
        ),
        "{err}"
    );
    let state = f.state().await;
    assert_eq!(state.current.unwrap().id().to_string(), before);
    assert!(state.intent.is_none(), "intent cleared: nothing was issued");
    assert!(f.events.orphan_names().is_empty(), "a 5xx issues nothing");
    f.sim.sim().set_faults(Faults::default()).unwrap();
    f.assert_invariants().await;
    f.engine.rotate().await.expect("next run completes");
}

#[tokio::test]
async fn lost_issue_answer_is_reported_as_an_orphan_by_name() {
    let f = Fixture::new(NO_GRACE).await;
    f.engine.rotate().await.unwrap();
    f.sim
        .sim()
        .set_faults(faults_on("issuetoken", |f| {
            f.reset = 1.0;
            f.after_processing_rate = 1.0;
        }))
        .unwrap();
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::NetSuite {
                step: Step::Issue,
                ..
            }
        ),
        "{err}"
    );
    let orphans = f.events.orphan_names();
    assert_eq!(orphans.len(), 1, "{orphans:?}");
    let inspection = f.sim.sim().inspect();
    assert!(
        inspection
            .tokens
            .iter()
            .any(|t| t.is_active() && t.name == orphans[0]),
        "the orphan alert names the live token"
    );
    f.assert_invariants().await;
}

/// A refused NLAuth login is tried once: it latches, later runs refuse to log in without a
/// request, the store records the latch, and only an operator's explicit rotate tries again.
#[tokio::test]
async fn a_refused_login_latches_and_only_an_explicit_rotate_tries_it_again() {
    let f = Fixture::with(Seed::demo(), NO_GRACE, |i| {
        Arc::make_mut(&mut i.tba_mut().unwrap().login).password =
            SecretString::from("wrong password");
    })
    .await;
    let issue_requests = || f.sim.sim().inspect().requests("issuetoken");
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::NetSuite {
                step: Step::Issue,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(issue_requests(), 1);
    assert!(
        f.state().await.login_latch.is_some(),
        "the store records it"
    );
    for _ in 0..3 {
        let err = f.engine.rotate().await.unwrap_err();
        assert!(matches!(err, RotationError::LoginLatched { .. }), "{err}");
        assert_eq!(err.reason(), "login");
        assert!(!err.to_string().contains("wrong password"), "{err}");
    }
    assert_eq!(issue_requests(), 1, "no login while latched");
    assert_eq!(f.sim.sim().inspect().failed_login_count, 1);

    let explicit = RotateOptions {
        explicit: true,
        revoke_now: false,
    };
    let err = f.engine.rotate_with(explicit).await.unwrap_err();
    assert!(matches!(err, RotationError::NetSuite { .. }), "{err}");
    assert_eq!(issue_requests(), 2, "an operator's rotate tries once");
    assert_eq!(
        f.events.count(|e| matches!(e, Event::LoginRefused { .. })),
        2
    );
    assert_eq!(f.token_count(), 0);
}

#[tokio::test]
async fn stage_failure_revokes_the_new_token() {
    let f = Fixture::new(NO_GRACE).await;
    let first = f.engine.rotate().await.unwrap();
    f.store.fail("stage_pending", StoreErrorKind::Failed);
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::Store {
                step: Step::Stage,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(f.token_count(), 2, "a second token was issued");
    assert_eq!(f.active_tokens().len(), 1, "and revoked again");
    assert!(f.active_tokens().contains(&first.token_id));
    assert_eq!(
        f.state().await.current.unwrap().id().to_string(),
        first.token_id
    );
    assert_eq!(
        f.events
            .count(|e| matches!(e, Event::NewTokenRevoked { .. })),
        1
    );
    f.store.heal();
    f.assert_invariants().await;
}

#[tokio::test]
async fn verify_failure_revokes_the_new_token_and_keeps_current() {
    let f = Fixture::new(NO_GRACE).await;
    let first = f.engine.rotate().await.unwrap();
    // A second engine on the same store expecting another role: tokeninfo will not match.
    let mut wrong = common::integration(&f.sim.base_url(), NO_GRACE);
    Arc::make_mut(&mut wrong.tba_mut().unwrap().expect).role_id = Some("9999".into());
    let engine = netsuite_token_rotator::rotation::Engine::new(
        std::sync::Arc::new(wrong),
        f.client.clone(),
        f.store.clone(),
        f.events.clone(),
    );
    let err = engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::Mismatch {
                field: "roleId",
                ..
            }
        ),
        "{err}"
    );
    let state = f.state().await;
    assert_eq!(state.current.unwrap().id().to_string(), first.token_id);
    assert!(state.pending.is_none() && state.intent.is_none());
    assert_eq!(f.active_tokens().len(), 1);
    f.assert_invariants().await;
}

#[tokio::test]
async fn promote_failure_keeps_pending_and_recovery_promotes_it() {
    let f = Fixture::new(NO_GRACE).await;
    let first = f.engine.rotate().await.unwrap();
    f.store.fail("promote", StoreErrorKind::Unavailable);
    let err = f.engine.rotate().await.unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::Store {
                step: Step::Promote,
                ..
            }
        ),
        "{err}"
    );
    let state = f.state().await;
    let pending = state.pending.clone().expect("pending kept for recovery");
    assert_eq!(
        state.current.as_ref().unwrap().id().to_string(),
        first.token_id
    );
    f.assert_invariants().await;

    f.store.heal();
    let recovery = f.engine.recover().await.unwrap();
    assert_eq!(recovery.promoted, Some(pending.rotation_id()));
    let state = f.state().await;
    assert_eq!(
        state.current.unwrap().id().to_string(),
        pending.id().to_string()
    );
    assert_eq!(
        recovery.previous_revoked.as_deref(),
        Some(first.token_id.as_str()),
        "with no grace window recovery also revokes the replaced token"
    );
    f.assert_invariants().await;
}

#[tokio::test]
async fn revoke_failure_keeps_the_previous_token_recorded_until_a_later_run() {
    let f = Fixture::new(NO_GRACE).await;
    let first = f.engine.rotate().await.unwrap();
    f.sim
        .sim()
        .set_faults(faults_on("revoketoken", |f| f.server_error = 1.0))
        .unwrap();
    let second = f.engine.rotate().await.expect("rotation itself succeeds");
    assert!(
        matches!(second.previous, PreviousFate::RevokeFailed { .. }),
        "{:?}",
        second.previous
    );
    let previous = f.state().await.previous.unwrap();
    assert_eq!(previous.token.id().to_string(), first.token_id);
    assert!(previous.revoked_at.is_none());
    f.assert_invariants().await;

    f.sim.sim().set_faults(Faults::default()).unwrap();
    assert!(matches!(
        f.engine.revoke_due(false).await.unwrap(),
        RevokeOutcome::Revoked { .. }
    ));
    assert_eq!(f.active_tokens().len(), 1);
}

#[tokio::test]
async fn import_then_rotate_revokes_the_imported_token() {
    let f = Fixture::new(NO_GRACE).await;
    let (token_id, token_secret) = f
        .sim
        .sim()
        .create_token(&HandMadeToken {
            account: demo::ACCOUNT.into(),
            email: demo::EMAIL.into(),
            role: demo::ROLE_ID.into(),
            consumer_key: demo::CONSUMER_KEY.into(),
            name: "hand made".into(),
        })
        .unwrap();
    f.engine
        .import(token_id.clone(), token_secret)
        .await
        .expect("import");
    assert_eq!(f.state().await.current.unwrap().id().to_string(), token_id);

    // A second import into a store that has a token is refused.
    let err = f
        .engine
        .import("other".into(), SecretString::from("x"))
        .await
        .unwrap_err();
    assert!(matches!(err, RotationError::StoreNotEmpty), "{err}");

    let rotated = f.engine.rotate().await.unwrap();
    assert!(matches!(&rotated.previous, PreviousFate::Revoked { token_id: t } if *t == token_id));
    assert!(!f.active_tokens().contains(&token_id));
    f.assert_invariants().await;
}

#[tokio::test]
async fn import_of_a_token_netsuite_refuses_is_rejected() {
    let f = Fixture::new(NO_GRACE).await;
    let err = f
        .engine
        .import("0".repeat(64), SecretString::from("1".repeat(64)))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RotationError::NetSuite {
                step: Step::Verify,
                ..
            }
        ),
        "{err}"
    );
    assert!(f.state().await.current.is_none());
}

#[tokio::test]
async fn two_factor_user_rotates_with_totp() {
    const TOTP_SECRET: &str = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP";
    let mut seed = Seed::demo();
    seed.accounts[0].roles[0].require_2fa = true;
    seed.accounts[0].users[0].totp_secret = Some(SecretString::from(TOTP_SECRET));
    let f = Fixture::with(seed.clone(), NO_GRACE, |i| {
        Arc::make_mut(&mut i.tba_mut().unwrap().login).totp_secret =
            Some(SecretString::from(TOTP_SECRET));
    })
    .await;
    f.engine.rotate().await.expect("rotation with nlauth_otp");
    f.engine.rotate().await.expect("and again");
    assert_eq!(f.active_tokens().len(), 1);

    // Without the TOTP secret the same user is refused.
    let g = Fixture::with(seed, NO_GRACE, |_| {}).await;
    assert!(g.engine.rotate().await.is_err());
    assert_eq!(g.token_count(), 0);
}

#[tokio::test]
async fn token_waiting_for_approval_stays_known_until_it_can_be_verified() {
    let mut seed = Seed::demo();
    seed.accounts[0].require_approval = true;
    seed.accounts[0].integrations[0].installed = false;
    let f = Fixture::with(seed, NO_GRACE, |_| {}).await;
    let err = f.engine.rotate().await.unwrap_err();
    // The first issuetoken installed the integration, which now waits for approval: said so.
    assert!(
        matches!(err, RotationError::AwaitingApproval { .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("Require Approval during Auto-Installation of Integration"),
        "{err}"
    );
    // The token exists but cannot be used, nor revoked with itself: it stays pending, known.
    f.assert_invariants().await;
    let pending = f
        .state()
        .await
        .pending
        .expect("unverified token kept as pending");
    assert_eq!(
        f.active_tokens(),
        [pending.id().to_string()].into_iter().collect()
    );

    f.sim.sim().approve(demo::CONSUMER_KEY).unwrap();
    f.engine
        .rotate()
        .await
        .expect("after approval the rotation completes");
    assert_eq!(f.active_tokens().len(), 1);
    f.assert_invariants().await;
}

#[tokio::test]
async fn secrets_stay_out_of_debug_output() {
    let f = Fixture::new(NO_GRACE).await;
    f.engine.rotate().await.unwrap();
    let state = f.state().await;
    let current = state.current.as_ref().unwrap();
    let debug = format!("{state:?} {:?}", f.integration);
    for secret in [
        current.as_tba().unwrap().token_secret.expose_secret(),
        demo::CONSUMER_SECRET,
        demo::PASSWORD,
    ] {
        assert!(!debug.contains(secret), "Debug output leaks a secret");
    }
}

/// HTML pages, truncated JSON and random bytes where JSON was expected, at every endpoint and
/// after NetSuite did the work: the rotation fails or defers cleanly and nothing is lost.
#[tokio::test]
async fn garbage_answers_at_every_endpoint_lose_nothing() {
    for endpoint in ["issuetoken", "tokeninfo", "revoketoken"] {
        let f = Fixture::new(NO_GRACE).await;
        f.engine.rotate().await.unwrap();
        f.sim
            .sim()
            .set_faults(faults_on(endpoint, |f| {
                f.garbage = 1.0;
                f.after_processing_rate = 1.0;
                f.rng_seed = Some(7);
            }))
            .unwrap();
        // A garbage 2xx from revoketoken is a success (its body is undocumented); elsewhere
        // the rotation fails.
        let result = f.engine.rotate().await;
        assert_eq!(
            result.is_ok(),
            endpoint == "revoketoken",
            "{endpoint}: {result:?}"
        );
        f.sim.sim().set_faults(Faults::default()).unwrap();
        f.assert_invariants().await;
        f.engine.rotate().await.expect("the next run completes");
        f.assert_invariants().await;
    }
}

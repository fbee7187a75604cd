//! `status`: each integration's tokens and rotation state, as a table or as JSON. Token ids are
//! shortened and no secret value is ever read out of the state into the output.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::cli::Outcome;
use crate::cli::out::outln;
use crate::config::Config;
use crate::rotation::{Plan, Planned};
use crate::secret::short_id;
use crate::store::StoreState;

#[derive(Serialize)]
struct IntegrationStatus {
    integration: String,
    store: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    current: Option<TokenStatus>,
    previous: Option<PreviousStatus>,
    rotation_in_progress: Option<InProgress>,
    /// Set after NetSuite refused the NLAuth login: no login is tried until the login
    /// configuration changes or an operator runs `rotate --integration` for it.
    #[serde(skip_serializing_if = "Option::is_none")]
    login_latched: Option<LatchStatus>,
    /// The next scheduled rotation (from `schedule`, `timezone`, `jitter`).
    next_rotation: Option<DateTime<Utc>>,
    /// The store is empty or the current token missed a scheduled rotation: a running daemon
    /// rotates at once (at start, or after its retry wait), or at the end of `freeze`.
    rotation_due: bool,
    /// The freeze window in force: no rotation starts until it ends (revocations still happen).
    #[serde(skip_serializing_if = "Option::is_none")]
    freeze: Option<FreezeStatus>,
    /// The store keeps no history, so the outcome of the last rotation is not known here;
    /// this says what the store's state implies: `ok`, `pending` (a rotation in progress or
    /// interrupted), `latched` (a refused login stops rotation), `expired` (the current M2M
    /// certificate has expired), `revoke-due` (a previous token past its grace window),
    /// `no-token`, or `error` (the store cannot be read).
    state: &'static str,
}

#[derive(Serialize)]
struct TokenStatus {
    /// The token ID (TBA) or certificate ID (M2M), shortened.
    token_id: String,
    issued_at: DateTime<Utc>,
    /// When the certificate expires (M2M, when known).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<DateTime<Utc>>,
    age_seconds: i64,
    rotation_id: String,
}

#[derive(Serialize)]
struct PreviousStatus {
    token_id: String,
    /// Its token is named `<prefix>-<rotation id>` in NetSuite.
    rotation_id: String,
    revoke_after: DateTime<Utc>,
    revoked_at: Option<DateTime<Utc>>,
}

#[derive(Serialize)]
struct FreezeStatus {
    /// The window's `name` (`freeze[N]` when it has none).
    window: String,
    /// When the freeze ends (with any window continuing it without a gap).
    until: DateTime<Utc>,
}

#[derive(Serialize)]
struct LatchStatus {
    since: DateTime<Utc>,
    /// NetSuite's answer, e.g. `401 INVALID_LOGIN_CREDENTIALS`.
    reason: String,
}

#[derive(Serialize)]
struct InProgress {
    rotation_id: String,
    token_name: String,
    started_at: DateTime<Utc>,
    staged: bool,
}

pub async fn print(config: &Config, json: bool) -> Outcome {
    let mut rows = Vec::new();
    let mut outcome = Outcome::Ok;
    let mut patterns = crate::schedule::PatternCache::default();
    for integration in &config.integrations {
        let mut row = match crate::store::open(&integration.store).await {
            Ok(store) => {
                let describe = store.describe();
                match store.load().await {
                    Ok(state) => summarise(&integration.name, describe, &state),
                    Err(e) => failed(
                        &integration.name,
                        describe,
                        format!("{e}. {}", e.hint(&integration.name)),
                    ),
                }
            }
            Err(e) => failed(&integration.name, String::new(), e.to_string()),
        };
        if row.error.is_some() {
            outcome = Outcome::Failed;
        }
        let renew_before = integration
            .m2m
            .as_ref()
            .and_then(|m2m| crate::config::parse_duration(&m2m.renew_before).ok());
        if let Ok(schedule) = integration.schedule_cached(&mut patterns, &config.freezes) {
            let now = Utc::now();
            row.next_rotation = schedule.next_after(now);
            row.freeze = schedule.freeze_at(now).map(|freeze| FreezeStatus {
                window: freeze.name.to_string(),
                until: freeze.until,
            });
            row.rotation_due = row.error.is_none()
                && match &row.current {
                    None => true,
                    Some(c) => {
                        schedule.is_overdue(c.issued_at, now)
                            || c.expires_at.zip(renew_before).is_some_and(|(t, before)| {
                                chrono::Duration::from_std(before).is_ok_and(|b| t - b <= now)
                            })
                    }
                };
        }
        rows.push(row);
    }
    if !json {
        print_table(&rows);
        outln!(
            "(the last rotation's outcome is not kept in the store: see the daemon's logs, alerts and the netsuite_rotator metrics)"
        );
        return outcome;
    }
    if json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("status serialises")
        );
    } else {
        print_table(&rows);
    }
    outcome
}

/// One line saying what `rotate` would do now, for `--dry-run`, and whether that is a refusal
/// (the real command would exit 1).
pub fn plan(plan: &Plan) -> (String, bool) {
    let mut line = String::new();
    if let Some((intent, staged)) = &plan.recover {
        line.push_str(&format!(
            "would first recover rotation {} (started {}): {}; then ",
            intent.rotation_id,
            intent.started_at,
            if *staged {
                "promote its staged token if tokeninfo accepts it, else revoke it"
            } else {
                "its token was never staged, so its name is reported as a suspected orphan"
            }
        ));
    } else {
        line.push_str("would ");
    }
    let refused = match &plan.then {
        Err(refusal) => {
            line.push_str(&format!("refuse: {refusal}"));
            true
        }
        Ok(Planned::RevokeThenRotate {
            previous_token_id,
            current_token_id,
        }) => {
            line.push_str(&format!(
                "revoke previous token {} (its grace window is over), then rotate current token {}",
                short_id(previous_token_id),
                current_token_id.as_deref().map_or("-".into(), short_id)
            ));
            false
        }
        Ok(Planned::Rotate { current_token_id }) => {
            line.push_str(&format!(
                "rotate current token {}",
                short_id(current_token_id)
            ));
            false
        }
        Ok(Planned::Bootstrap) => {
            line.push_str("bootstrap: issue a first token into the empty store");
            false
        }
    };
    (line, refused)
}

fn summarise(name: &str, store: String, state: &StoreState) -> IntegrationStatus {
    let now = Utc::now();
    IntegrationStatus {
        integration: name.to_string(),
        store,
        error: None,
        current: state.current.as_ref().map(|c| TokenStatus {
            token_id: short_id(c.id()),
            issued_at: c.issued_at(),
            expires_at: c.expires_at(),
            age_seconds: (now - c.issued_at()).num_seconds(),
            rotation_id: c.rotation_id().to_string(),
        }),
        previous: state.previous.as_ref().map(|p| PreviousStatus {
            token_id: short_id(p.token.id()),
            rotation_id: p.token.rotation_id().to_string(),
            revoke_after: p.revoke_after,
            revoked_at: p.revoked_at,
        }),
        rotation_in_progress: state.intent.as_ref().map(|i| InProgress {
            rotation_id: i.rotation_id.to_string(),
            token_name: i.token_name.clone(),
            started_at: i.started_at,
            staged: state.pending.is_some(),
        }),
        login_latched: state.login_latch.as_ref().map(|l| LatchStatus {
            since: l.at,
            reason: l.reason.clone(),
        }),
        next_rotation: None,
        rotation_due: false,
        freeze: None,
        state: state_word(state, now),
    }
}

/// What the store's state says about the integration, in one word.
fn state_word(state: &StoreState, now: DateTime<Utc>) -> &'static str {
    if state.intent.is_some() || state.pending.is_some() {
        "pending"
    } else if state.login_latch.is_some() {
        "latched"
    } else if state.current.is_none() {
        "no-token"
    } else if state
        .current
        .as_ref()
        .and_then(|c| c.expires_at())
        .is_some_and(|t| t <= now)
    {
        "expired"
    } else if state
        .previous
        .as_ref()
        .is_some_and(|p| p.revoked_at.is_none() && p.revoke_after <= now)
    {
        "revoke-due"
    } else {
        "ok"
    }
}

fn failed(name: &str, store: String, error: String) -> IntegrationStatus {
    IntegrationStatus {
        integration: name.to_string(),
        store,
        error: Some(error),
        current: None,
        previous: None,
        rotation_in_progress: None,
        login_latched: None,
        next_rotation: None,
        rotation_due: false,
        freeze: None,
        state: "error",
    }
}

fn print_table(rows: &[IntegrationStatus]) {
    outln!(
        "{:<20} {:<10} {:<14} {:>6} {:<32} {:<24} {:<17} STORE",
        "INTEGRATION",
        "STATE",
        "CURRENT",
        "AGE",
        "PREVIOUS",
        "IN PROGRESS",
        "NEXT ROTATION"
    );
    for row in rows {
        let (current, age) = match &row.current {
            Some(c) => (c.token_id.clone(), human_age(c.age_seconds)),
            None => ("-".into(), "-".into()),
        };
        let previous = match &row.previous {
            None => "-".to_string(),
            Some(p) => match p.revoked_at {
                Some(at) => format!("{} revoked {}", p.token_id, at.format("%m-%d %H:%M")),
                None => format!(
                    "{} revoke {}",
                    p.token_id,
                    p.revoke_after.format("%m-%d %H:%M")
                ),
            },
        };
        let in_progress = row
            .rotation_in_progress
            .as_ref()
            .map_or("-".to_string(), |r| {
                format!(
                    "{}… {}",
                    &r.rotation_id[..8],
                    if r.staged { "staged" } else { "not staged" }
                )
            });
        let next = match row.next_rotation {
            _ if row.rotation_due && row.freeze.is_some() => "after freeze".to_string(),
            _ if row.rotation_due => "due now".to_string(),
            Some(t) => t.format("%Y-%m-%d %H:%M").to_string(),
            None => "-".to_string(),
        };
        outln!(
            "{:<20} {:<10} {:<14} {:>6} {:<32} {:<24} {:<17} {}",
            row.integration,
            row.state,
            current,
            age,
            previous,
            in_progress,
            next,
            row.store
        );
        if let Some(e) = &row.error {
            outln!("  error: {e}");
        }
        if let Some(expires_at) = row.current.as_ref().and_then(|c| c.expires_at) {
            outln!(
                "  certificate expires {}",
                expires_at.format("%Y-%m-%d %H:%M UTC")
            );
        }
        if let Some(freeze) = &row.freeze {
            outln!(
                "  freeze window {:?} in force until {}: no rotation starts before then (revocations still happen); `rotate --force` overrides it (docs/runbook.md#freeze-window)",
                freeze.window,
                freeze.until.format("%Y-%m-%d %H:%M:%S UTC")
            );
        }
        if let Some(latch) = &row.login_latched {
            println!(
                "  login latched since {} ({}): NetSuite refused the NLAuth login; no login is tried until the login configuration changes and the daemon reloads it, or `rotate --integration {}` (docs/runbook.md#login-refused)",
                latch.since.format("%Y-%m-%d %H:%M UTC"),
                latch.reason,
                row.integration
            );
        }
    }
}

fn human_age(seconds: i64) -> String {
    match seconds {
        s if s < 120 => format!("{s}s"),
        s if s < 7200 => format!("{}m", s / 60),
        s if s < 172_800 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::SecretString;
    use crate::store::{CredentialRecord, Intent, PreviousToken, TokenRecord};
    use uuid::Uuid;

    fn token(id: &str) -> CredentialRecord {
        CredentialRecord::Tba(TokenRecord {
            account_id: "123456_SB1".into(),
            realm: "123456_SB1".into(),
            consumer_key: Some(SecretString::from("ck-never-shown-0000000000000000000000")),
            consumer_secret: Some(SecretString::from("cs-never-shown-000000000000000000000")),
            token_id: id.into(),
            token_secret: SecretString::from("ts-never-shown-0000000000000000000000"),
            issued_at: Utc::now() - chrono::Duration::hours(3),
            rotation_id: Uuid::new_v4(),
        })
    }

    fn state(current: bool, previous_due: Option<bool>, intent: bool) -> StoreState {
        let now = Utc::now();
        StoreState {
            current: current.then(|| token("current-token-id-0123456789abcdef")),
            previous: previous_due.map(|due| PreviousToken {
                token: token("previous-token-id-0123456789abcdef"),
                revoke_after: if due {
                    now - chrono::Duration::minutes(1)
                } else {
                    now + chrono::Duration::hours(1)
                },
                revoked_at: None,
            }),
            intent: intent.then(|| Intent {
                rotation_id: Uuid::new_v4(),
                token_name: "erp-sync-x".into(),
                started_at: now,
                owner: String::new(),
            }),
            pending: None,
            login_latch: None,
        }
    }

    #[test]
    fn state_word_names_what_the_store_implies() {
        let now = Utc::now();
        assert_eq!(state_word(&state(false, None, false), now), "no-token");
        assert_eq!(state_word(&state(true, None, false), now), "ok");
        assert_eq!(state_word(&state(true, Some(false), false), now), "ok");
        assert_eq!(
            state_word(&state(true, Some(true), false), now),
            "revoke-due"
        );
        assert_eq!(state_word(&state(true, None, true), now), "pending");
    }

    #[test]
    fn the_json_row_has_shortened_ids_and_no_secret() {
        let row = summarise("erp-sync", "file x".into(), &state(true, Some(false), true));
        let json = serde_json::to_string(&row).unwrap();
        assert!(!json.contains("never-shown"), "{json}");
        assert!(
            !json.contains("current-token-id-0123456789abcdef"),
            "{json}"
        );
        assert!(
            json.contains(&short_id("current-token-id-0123456789abcdef")),
            "{json}"
        );
        assert!(json.contains("\"state\":\"pending\""), "{json}");
        assert!(json.contains("\"rotation_in_progress\":{"), "{json}");
    }
}

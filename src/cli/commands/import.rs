//! `import`: a credential made by hand put in as current, read from stdin and proved with
//! NetSuite first.

use std::io::BufRead;

use super::engines;
use crate::cli::daemon_link::DaemonLink;
use crate::cli::out::{errln, outln};
use crate::cli::{Outcome, Target};
use crate::config::Config;
use crate::netsuite::NetSuiteClient;
use crate::secret::{SecretString, short_id};

pub(super) async fn import(config: &Config, client: &NetSuiteClient, name: &str) -> Outcome {
    let target = Target {
        integrations: vec![name.to_string()],
        all: false,
    };
    let engine = match engines(config, client, &target).await {
        Ok(mut e) => e.remove(0),
        Err(o) => return o,
    };
    let imported = match engine.integration().m2m() {
        None => {
            let (token_id, token_secret) = match read_token_from_stdin() {
                Ok(t) => t,
                Err(problem) => {
                    errln!("error: import: {problem}");
                    return Outcome::BadUsage;
                }
            };
            let what = format!("token {}", short_id(&token_id));
            engine.import(token_id, token_secret).await.map(|()| what)
        }
        Some(_) => {
            let input = match crate::cli::import_input::read_certificate(std::io::stdin().lock()) {
                Ok(input) => input,
                Err(problem) => {
                    errln!("error: import: {problem}");
                    return Outcome::BadUsage;
                }
            };
            let what = format!("certificate {}", input.certificate_id);
            engine
                .import_certificate(input.certificate_id, input.private_key, input.certificate)
                .await
                .map(|()| what)
        }
    };
    match imported {
        Ok(what) => {
            if let Some(daemon) = DaemonLink::new(config) {
                daemon.changed(name).await;
            }
            outln!("{name}: {what} imported as current; the next rotation replaces and revokes it");
            Outcome::Ok
        }
        Err(e) => {
            outln!("{name}: import failed: {e}");
            Outcome::Failed
        }
    }
}

/// Token id on the first line, token secret on the second.
pub(super) fn read_token_from_stdin() -> Result<(String, SecretString), String> {
    use std::io::IsTerminal;
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        // Someone typing: say what is awaited, since nothing else would.
        errln!(
            "reading the token id (line 1), then the token secret (line 2) from stdin; the \
             secret echoes here, so prefer a pipe: printf '%s\\n%s\\n' \"$TOKEN_ID\" \"$TOKEN_SECRET\" | ..."
        );
    }
    let mut lines = stdin.lock().lines();
    let mut next = |what: &str| -> Result<zeroize::Zeroizing<String>, String> {
        let line = lines
            .next()
            .ok_or_else(|| format!("expected the {what} on stdin, got end of input"))?
            .map_err(|e| format!("cannot read the {what} from stdin: {e}"))?;
        let line = zeroize::Zeroizing::new(line);
        let trimmed = line.trim();
        if trimmed.is_empty() {
            return Err(format!("the {what} line is empty"));
        }
        Ok(zeroize::Zeroizing::new(trimmed.to_string()))
    };
    let token_id = next("token id (line 1)")?;
    let token_secret = next("token secret (line 2)")?;
    if token_id.chars().any(char::is_whitespace) {
        return Err("the token id (line 1) contains white space".into());
    }
    Ok((
        token_id.to_string(),
        SecretString::from(token_secret.as_str()),
    ))
}

//! The documentation is kept true by tests: every alert kind has its runbook section, every
//! TOML block in `docs/configuration.md` parses with the real config parser, `config/example.toml`
//! parses, every key the config structs accept is documented, and links between the docs point
//! at files and headings that exist.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use netsuite_token_rotator::alert::AlertKind;
use netsuite_token_rotator::config::{Config, StoreConfig};

fn repo_file(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// GitHub's anchor for a heading: lower case; letters, digits, `-`, `_` and spaces kept, other
/// characters dropped; spaces become `-`.
fn github_anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors a Markdown page offers: one per heading (outside code blocks), plus explicit
/// `<a id="...">` tags.
fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut in_code = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        if line.starts_with('#') {
            found.insert(github_anchor(line.trim_start_matches('#')));
        }
        let mut rest = line;
        while let Some(start) = rest.find("<a id=\"") {
            let after = &rest[start + "<a id=\"".len()..];
            let end = after.find('"').expect("closed id attribute");
            found.insert(after[..end].to_string());
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn github_anchor_matches_githubs_rules() {
    assert_eq!(github_anchor(" rotation-failed"), "rotation-failed");
    assert_eq!(
        github_anchor(" `[integrations.login]`"),
        "integrationslogin"
    );
    assert_eq!(
        github_anchor("6. Two-factor authentication: the TOTP secret"),
        "6-two-factor-authentication-the-totp-secret"
    );
}

#[test]
fn every_alert_kind_has_a_runbook_section() {
    let runbook = repo_file("docs/runbook.md");
    let offered = anchors(&runbook);
    for kind in AlertKind::ALL {
        let link = kind.runbook();
        let anchor = link
            .strip_prefix("docs/runbook.md#")
            .unwrap_or_else(|| panic!("{kind:?}: runbook link {link:?} is not in docs/runbook.md"));
        assert!(
            offered.contains(anchor),
            "{kind:?}: docs/runbook.md has no heading with anchor #{anchor} (headings give: {offered:?})"
        );
    }
}

/// A code block of a Markdown page: its info string and its text.
struct CodeBlock {
    info: String,
    text: String,
    line: usize,
}

fn code_blocks(markdown: &str) -> Vec<CodeBlock> {
    let mut blocks = Vec::new();
    let mut open: Option<CodeBlock> = None;
    for (i, line) in markdown.lines().enumerate() {
        let trimmed = line.trim_start();
        match (&mut open, trimmed.strip_prefix("```")) {
            (None, Some(info)) => {
                open = Some(CodeBlock {
                    info: info.trim().to_string(),
                    text: String::new(),
                    line: i + 1,
                })
            }
            (Some(_), Some(_)) => blocks.push(open.take().expect("open block")),
            (Some(block), None) => {
                block.text.push_str(line);
                block.text.push('\n');
            }
            (None, None) => {}
        }
    }
    assert!(open.is_none(), "a code block is not closed");
    blocks
}

/// What a fragment is merged into: the smallest config that parses.
const MINIMAL: &str = r#"
[[integrations]]
name = "docs"
account_id = "123456_SB1"
consumer_key = { env = "DOCS_CK" }
consumer_secret = { env = "DOCS_CS" }
[integrations.login]
email = "docs@example.com"
password = { env = "DOCS_PW" }
role = "1001"
[integrations.store]
kind = "file"
path = "/tmp/docs-store.json"
"#;

/// Keys that say what a table is; a table holding one replaces the base's table instead of
/// merging into it (a store of another kind, or a secret reference of another form, keeps none
/// of the old keys).
const DISCRIMINATORS: [&str; 5] = ["kind", "method", "env", "file", "credential"];

/// Merges `fragment` into `base`: tables merge key by key, except tables holding a
/// [`DISCRIMINATORS`] key, which replace; an `integrations` table or array merges into the
/// base's first integration.
fn merge(base: &mut toml::Table, fragment: toml::Table) {
    for (key, value) in fragment {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Array(integrations)), toml::Value::Array(mut items))
                if key == "integrations" =>
            {
                assert_eq!(
                    items.len(),
                    1,
                    "a fragment holds at most one [[integrations]]"
                );
                let first = integrations[0].as_table_mut().expect("integration table");
                match items.remove(0) {
                    toml::Value::Table(t) => merge(first, t),
                    other => panic!("[[integrations]] entry is not a table: {other}"),
                }
            }
            (Some(toml::Value::Array(integrations)), toml::Value::Table(t))
                if key == "integrations" =>
            {
                let first = integrations[0].as_table_mut().expect("integration table");
                merge(first, t);
            }
            (Some(toml::Value::Table(existing)), toml::Value::Table(t))
                if !DISCRIMINATORS.iter().any(|k| t.contains_key(*k)) =>
            {
                merge(existing, t)
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn parse_block(block: &CodeBlock, page: &str) -> Result<Config, String> {
    let name = format!("{page} line {}", block.line);
    let text = if block.info == "toml fragment" {
        let mut base: toml::Table = toml::from_str(MINIMAL).expect("MINIMAL is TOML");
        let fragment: toml::Table =
            toml::from_str(&block.text).map_err(|e| format!("{name}: not TOML: {e}"))?;
        merge(&mut base, fragment);
        toml::to_string(&base).expect("a table serialises")
    } else {
        block.text.clone()
    };
    Config::parse(&text, &name).map_err(|e| e.to_string())
}

#[test]
fn every_toml_block_in_the_configuration_page_parses() {
    let page = repo_file("docs/configuration.md");
    let blocks: Vec<_> = code_blocks(&page)
        .into_iter()
        .filter(|b| b.info.starts_with("toml"))
        .collect();
    assert!(
        blocks.len() >= 10,
        "expected the page's TOML examples, found {}",
        blocks.len()
    );
    let mut failures = Vec::new();
    for block in &blocks {
        assert!(
            matches!(block.info.as_str(), "toml" | "toml fragment"),
            "docs/configuration.md line {}: info string {:?}: expected `toml` or `toml fragment`",
            block.line,
            block.info
        );
        if let Err(e) = parse_block(block, "docs/configuration.md") {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "blocks that do not parse:\n{}",
        failures.join("\n")
    );
}

#[test]
fn toml_blocks_on_the_other_pages_parse_too() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut checked = 0;
    let mut failures = Vec::new();
    for entry in std::fs::read_dir(root.join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|x| x != "md") || path.ends_with("configuration.md") {
            continue;
        }
        let page = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        for block in code_blocks(&page)
            .iter()
            .filter(|b| b.info.starts_with("toml"))
        {
            checked += 1;
            if let Err(e) = parse_block(block, &name) {
                failures.push(e);
            }
        }
    }
    assert!(
        checked >= 3,
        "expected the store and telemetry examples, found {checked}"
    );
    assert!(
        failures.is_empty(),
        "blocks that do not parse:\n{}",
        failures.join("\n")
    );
}

#[test]
fn a_wrong_key_in_a_fragment_fails() {
    for wrong in [
        "[daemon]\nlisten_addr = \"127.0.0.1:1\"\n",
        "[integrations.login]\nemail = \"a@b.c\"\npasword = { env = \"X\" }\n",
        "[integrations.store]\nkind = \"aws\"\nsecret_id = \"s\"\npath = \"/leftover\"\n",
        "[[integrations]]\nrevoke_afer = \"1h\"\n",
        "[[alerts]]\nkind = \"slack\"\nurl = \"https://x\"\n",
    ] {
        let block = CodeBlock {
            info: "toml fragment".into(),
            text: wrong.into(),
            line: 0,
        };
        assert!(
            parse_block(&block, "test").is_err(),
            "a fragment with a wrong key parsed:\n{wrong}"
        );
    }
    let right = CodeBlock {
        info: "toml fragment".into(),
        text: "[integrations.store]\nkind = \"aws\"\nsecret_id = \"s\"\n".into(),
        line: 0,
    };
    parse_block(&right, "test").expect("a store of another kind replaces the minimal one");
}

#[test]
fn the_example_config_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/example.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!config.integrations.is_empty());
    assert!(
        !config.alerts.is_empty(),
        "the example shows an alert channel"
    );
}

/// The keys a struct or enum in a source file accepts, read from its `name: Type` field
/// lines, so that a key added to the code without documentation fails the next test.
/// Fields marked `#[serde(skip)]` are not keys.
fn fields_of(source: &str, item: &str) -> Vec<String> {
    let start = source
        .find(&format!("pub struct {item} {{"))
        .or_else(|| source.find(&format!("pub enum {item} {{")))
        .unwrap_or_else(|| panic!("no struct or enum {item} in the source"));
    let body = &source[start..];
    let end = body.find("\n}").expect("item closes at column 0");
    let mut fields = Vec::new();
    let mut skip_next = false;
    for line in body[..end].lines().skip(1) {
        let line = line.trim();
        if line.starts_with("#[serde(skip)]") {
            skip_next = true;
            continue;
        }
        if line.starts_with("//") || line.starts_with("#[") {
            continue;
        }
        let line = line.strip_prefix("pub ").unwrap_or(line);
        // `name: Type,` (struct field or struct-variant field), or `Variant { name: Type },`.
        let line = line.rsplit('{').next().unwrap_or(line);
        if let Some((name, _)) = line.split_once(':')
            && let name = name.trim()
            && !name.is_empty()
            && name.chars().all(|c| c.is_ascii_lowercase() || c == '_')
            && !skip_next
        {
            fields.push(name.to_string());
        }
        skip_next = false;
    }
    assert!(!fields.is_empty(), "{item}: no fields found");
    fields
}

#[test]
fn every_config_key_is_documented() {
    let config_rs = repo_file("src/config/mod.rs");
    let integration_rs = repo_file("src/config/integration.rs");
    let freeze_rs = repo_file("src/config/freeze.rs");
    let vault_rs = repo_file("src/store/vault/config.rs");
    let aws_rs = repo_file("src/store/aws/config.rs");
    let file_rs = repo_file("src/store/file/config.rs");
    let telemetry_rs = repo_file("src/telemetry/config.rs");
    let alert_rs = repo_file("src/alert/config.rs");
    let store_rs = repo_file("src/store/config.rs");
    let items: [(&str, &str); 15] = [
        (&config_rs, "Config"),
        (&config_rs, "DaemonConfig"),
        (&telemetry_rs, "TelemetryConfig"),
        (&config_rs, "NetSuiteConfig"),
        (&alert_rs, "AlertConfig"),
        (&integration_rs, "IntegrationConfig"),
        (&integration_rs, "LoginConfig"),
        (&integration_rs, "ExpectConfig"),
        (&integration_rs, "M2mConfig"),
        (&freeze_rs, "FreezeConfig"),
        (&file_rs, "FileStoreConfig"),
        (&vault_rs, "VaultStoreConfig"),
        (&vault_rs, "VaultAuth"),
        (&aws_rs, "AwsStoreConfig"),
        (&store_rs, "StoreConfig"),
    ];
    let page = repo_file("docs/configuration.md");
    let mut keys = BTreeSet::new();
    for (source, item) in items {
        if item == "StoreConfig" {
            // Newtype variants: the store's keys come from the backend structs above.
            continue;
        }
        keys.extend(fields_of(source, item));
    }
    // Sanity: the scan sees keys from every level, so a broken scan cannot pass silently.
    for expected in [
        "integrations",
        "listen",
        "otlp_endpoint",
        "datacenter_url",
        "routing_key",
        "revoke_after",
        "totp_secret",
        "entity_id",
        "kv_version",
        "jwt_path",
        "create_if_missing",
        "renew_before",
        "until",
    ] {
        assert!(
            keys.contains(expected),
            "the scan missed {expected}: {keys:?}"
        );
    }
    assert!(
        !keys.contains("source"),
        "a #[serde(skip)] field is not a key"
    );
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !page.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "keys accepted by the config but not documented (as `key`) in docs/configuration.md: {missing:?}"
    );
    // The discriminators and their values.
    for value in [
        "\"webhook\"",
        "\"slack\"",
        "\"pagerduty\"",
        "\"file\"",
        "\"vault\"",
        "\"aws\"",
        "\"kubernetes\"",
        "\"approle\"",
        "\"token\"",
    ] {
        assert!(
            page.contains(value),
            "docs/configuration.md does not mention {value}"
        );
    }
}

#[test]
fn links_between_docs_point_at_existing_files_and_headings() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut pages: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    pages.push(root.join("README.md"));
    let mut broken = Vec::new();
    for page in &pages {
        let text = std::fs::read_to_string(page).unwrap();
        let dir = page.parent().unwrap();
        let mut rest = text.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let end = after.find(')').unwrap_or(after.len());
            let target = &after[..end];
            rest = &after[end..];
            if target.contains("://") || target.starts_with("mailto:") || target.contains(' ') {
                continue;
            }
            let (file, anchor) = target.split_once('#').unwrap_or((target, ""));
            let file_path = if file.is_empty() {
                page.clone()
            } else {
                dir.join(file)
            };
            if !file_path.exists() {
                broken.push(format!("{}: {target}: no such file", page.display()));
                continue;
            }
            if !anchor.is_empty() && file_path.extension().is_some_and(|x| x == "md") {
                let offered = anchors(&std::fs::read_to_string(&file_path).unwrap());
                if !offered.contains(anchor) {
                    broken.push(format!("{}: {target}: no such heading", page.display()));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// The Vault and AWS stores shown commented out at the end of `config/example.toml` parse
/// when they replace its file store, so the example cannot drift from the store keys.
#[test]
fn the_example_configs_commented_out_stores_parse() {
    let text = include_str!("../config/example.toml");
    let file_store = text
        .find("\n[integrations.store]\n")
        .expect("the example has a store");
    let mut kinds = Vec::new();
    for (at, _) in text.match_indices("\n# [integrations.store]\n") {
        let block: Vec<&str> = text[at + 1..]
            .lines()
            .take_while(|line| !line.trim().is_empty())
            .map(|line| line.strip_prefix("# ").unwrap_or(line))
            .collect();
        let replaced = format!("{}\n{}\n", &text[..file_store], block.join("\n"));
        let config = Config::parse(&replaced, "example.toml")
            .unwrap_or_else(|e| panic!("{e}\n{}", block.join("\n")));
        kinds.push(match config.integrations[0].store {
            StoreConfig::File(_) => "file",
            StoreConfig::Vault(_) => "vault",
            StoreConfig::Aws(_) => "aws",
        });
    }
    kinds.sort();
    assert_eq!(
        kinds,
        ["aws", "vault"],
        "one commented-out store of each other kind"
    );
}

/// The example's commented-out `[[freeze]]` tables parse once uncommented, so the example
/// cannot drift from the freeze keys.
#[test]
fn the_example_configs_commented_out_freeze_windows_parse() {
    let text = include_str!("../config/example.toml");
    let at = text
        .find("\n# [[freeze]]\n")
        .expect("the example shows freeze windows");
    let block: Vec<&str> = text[at + 1..]
        .lines()
        .take_while(|line| line.starts_with('#'))
        .map(|line| line.strip_prefix('#').unwrap_or(line).trim_start())
        .collect();
    let first_integration = text.find("\n[[integrations]]\n").unwrap();
    let uncommented = format!(
        "{}\n{}\n{}",
        &text[..first_integration],
        block.join("\n"),
        &text[first_integration..]
    );
    let config = Config::parse(&uncommented, "example.toml")
        .unwrap_or_else(|e| panic!("{e}\n{}", block.join("\n")));
    let names: Vec<_> = config.freeze.iter().map(|f| f.name.as_deref()).collect();
    assert_eq!(names, [Some("month-end"), Some("holidays")]);
}

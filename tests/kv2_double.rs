//! Tests of the KV v2 HTTP double (`tests/support/kv2_double.rs`) itself, with plain reqwest, so
//! that the Vault store's tests can trust it to behave like Vault's KV version 2 engine.
//!
//! Pages the double and these tests follow (hashicorp/vault, `website/content/`):
//! - `api-docs/secret/kv/kv-v2.mdx`: config, read/create/patch secret, delete, undelete,
//!   destroy, list, read/create/patch/delete metadata, `cas`, `cas_required`, `max_versions`
//!   (0 means 10), `delete_version_after`, `custom_metadata`.
//! - `api-docs/index.mdx`: `X-Vault-Token` / `Authorization: Bearer`, `X-Vault-Namespace`,
//!   `LIST` = `GET ?list=true`, `{"errors":[...]}` for status >= 400, empty LIST = 404
//!   `{"errors":[]}`, 204 for no body.
//! - `api-docs/auth/token.mdx` (lookup-self, renew-self) and `api-docs/system/health.mdx`.
//! - Exact error texts and the 404-with-metadata for deleted or destroyed versions, which the
//!   pages do not spell out: hashicorp/vault-plugin-secrets-kv `path_data.go`,
//!   `path_metadata.go`, `path_delete.go`, `path_destroy.go`, `path_config.go`; the envelope:
//!   hashicorp/vault `sdk/logical/translate_response.go`.
//!
//! - `docs/concepts/policies.mdx`: capabilities, `create` vs `update`, the most specific rule.
//!
//! Not implemented by the double:
//! - More than one ACL policy per token, `+` path segments and parameter constraints in
//!   policies; token expiry, other auth methods (AppRole, Kubernetes), response wrapping
//!   (`X-Vault-Wrap-TTL` is ignored).
//! - `GET /v1/<mount>/subkeys/<path>`, KV v1, more than one mount, `sys/mounts` and the
//!   `sys/internal/ui/mounts` preflight that the Vault CLI uses to detect KV versions.
//! - Real namespaces: `X-Vault-Namespace` is recorded and can be required, not used to
//!   partition data.
//! - Timed deletion runs only as Vault reads it: a version whose `deletion_time` has passed reads
//!   as deleted; nothing is removed in the background.
//! - Exact texts of field-conversion errors (a `max_versions` that is not a number, say); the
//!   status (400) is Vault's.

#[path = "support/kv2_double.rs"]
mod kv2_double;

use std::collections::BTreeSet;

use kv2_double::{CAS_MISMATCH, CAS_REQUIRED, Kv2Double, MountConfig, PERMISSION_DENIED, PathKind};
use reqwest::Method;
use serde_json::{Value, json};

const TOKEN: &str = "hvs.kv2-double-test-token";

/// A bare Vault HTTP client: method, path under `/v1/`, optional JSON body.
struct Vault {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

struct Answer {
    status: u16,
    body: Value,
}

impl Vault {
    fn new(double: &Kv2Double) -> Vault {
        Vault {
            http: reqwest::Client::new(),
            base: double.address(),
            token: Some(TOKEN.to_owned()),
        }
    }

    fn with_token(double: &Kv2Double, token: Option<&str>) -> Vault {
        Vault {
            token: token.map(str::to_owned),
            ..Vault::new(double)
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.send(method, path, body, &[]).await
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let method = Method::from_bytes(method.as_bytes()).expect("a valid HTTP method");
        let mut request = self
            .http
            .request(method, format!("{}/v1/{path}", self.base));
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(serde_json::to_vec(&body).expect("a JSON body"));
        }
        let response = request.send().await.expect("the double answers");
        let status = response.status().as_u16();
        let bytes = response.bytes().await.expect("reading the double's answer");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("the double answers JSON")
        };
        Answer { status, body }
    }

    async fn write(&self, key: &str, data: Value, cas: Option<u64>) -> Answer {
        let body = match cas {
            Some(cas) => json!({"options": {"cas": cas}, "data": data}),
            None => json!({ "data": data }),
        };
        self.call("POST", &format!("secret/data/{key}"), Some(body))
            .await
    }

    async fn read(&self, key: &str) -> Answer {
        self.call("GET", &format!("secret/data/{key}"), None).await
    }

    async fn patch(&self, path: &str, body: Value) -> Answer {
        self.send(
            "PATCH",
            path,
            Some(body),
            &[("Content-Type", "application/merge-patch+json")],
        )
        .await
    }
}

fn keys_of(value: &Value) -> BTreeSet<String> {
    value
        .as_object()
        .expect("a JSON object")
        .keys()
        .cloned()
        .collect()
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|name| name.to_string()).collect()
}

fn errors(messages: &[&str]) -> Value {
    json!({ "errors": messages })
}

fn assert_rfc3339_with_nanos(text: &Value) {
    let text = text.as_str().expect("a timestamp string");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("{text:?} is not RFC 3339: {error}"));
    assert!(text.ends_with('Z'), "{text:?} is not in UTC");
}

fn assert_kv_envelope(body: &Value) {
    assert_eq!(
        keys_of(body),
        names(&[
            "request_id",
            "lease_id",
            "renewable",
            "lease_duration",
            "data",
            "wrap_info",
            "warnings",
            "auth",
            "mount_type",
        ])
    );
    assert!(!body["request_id"].as_str().expect("request_id").is_empty());
    assert_eq!(body["lease_id"], "");
    assert_eq!(body["renewable"], false);
    assert_eq!(body["lease_duration"], 0);
    assert_eq!(body["wrap_info"], Value::Null);
    assert_eq!(body["warnings"], Value::Null);
    assert_eq!(body["auth"], Value::Null);
}

const VERSION_METADATA_KEYS: &[&str] = &[
    "created_time",
    "custom_metadata",
    "deletion_time",
    "destroyed",
    "version",
];

#[tokio::test]
async fn writes_create_increasing_versions_and_reads_return_vaults_envelope() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    for (expected_version, value) in [(1, "one"), (2, "two"), (3, "three")] {
        let written = vault
            .write("app/db", json!({"password": value}), None)
            .await;
        assert_eq!(written.status, 200, "{:?}", written.body);
        assert_kv_envelope(&written.body);
        assert_eq!(written.body["mount_type"], "kv");
        let metadata = &written.body["data"];
        assert_eq!(keys_of(metadata), names(VERSION_METADATA_KEYS));
        assert_eq!(metadata["version"], expected_version);
        assert_rfc3339_with_nanos(&metadata["created_time"]);
        assert_eq!(metadata["deletion_time"], "");
        assert_eq!(metadata["destroyed"], false);
        assert_eq!(metadata["custom_metadata"], Value::Null);
    }

    let latest = vault.read("app/db").await;
    assert_eq!(latest.status, 200);
    assert_kv_envelope(&latest.body);
    assert_eq!(keys_of(&latest.body["data"]), names(&["data", "metadata"]));
    assert_eq!(latest.body["data"]["data"], json!({"password": "three"}));
    assert_eq!(
        keys_of(&latest.body["data"]["metadata"]),
        names(VERSION_METADATA_KEYS)
    );
    assert_eq!(latest.body["data"]["metadata"]["version"], 3);

    let first = vault
        .call("GET", "secret/data/app/db?version=1", None)
        .await;
    assert_eq!(first.status, 200);
    assert_eq!(first.body["data"]["data"], json!({"password": "one"}));
    assert_eq!(first.body["data"]["metadata"]["version"], 1);

    let beyond = vault
        .call("GET", "secret/data/app/db?version=9", None)
        .await;
    assert_eq!((beyond.status, beyond.body), (404, errors(&[])));
    let missing = vault.read("app/nothing-here").await;
    assert_eq!((missing.status, missing.body), (404, errors(&[])));
}

#[tokio::test]
async fn cas_zero_creates_only_when_the_key_does_not_exist() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    let created = vault
        .write("intent", json!({"rotation": "a"}), Some(0))
        .await;
    assert_eq!(created.status, 200);
    assert_eq!(created.body["data"]["version"], 1);

    let second = vault
        .write("intent", json!({"rotation": "b"}), Some(0))
        .await;
    assert_eq!(second.status, 400);
    assert_eq!(second.body, errors(&[CAS_MISMATCH]));
    assert_eq!(
        double.latest_data("intent").expect("version 1 readable")["rotation"],
        "a"
    );
    assert_eq!(double.secret("intent").expect("the key").current_version, 1);
}

#[tokio::test]
async fn cas_must_name_the_current_version() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault.write("k", json!({"n": 1}), None).await;
    vault.write("k", json!({"n": 2}), None).await;

    for stale in [0, 1, 3] {
        let refused = vault.write("k", json!({"n": "stale"}), Some(stale)).await;
        assert_eq!(
            (refused.status, refused.body),
            (400, errors(&[CAS_MISMATCH]))
        );
    }
    let accepted = vault.write("k", json!({"n": 3}), Some(2)).await;
    assert_eq!(accepted.status, 200);
    assert_eq!(accepted.body["data"]["version"], 3);
    // A cas of 1 on a key that does not exist is a mismatch too: its current version is 0.
    let absent = vault.write("absent", json!({"n": 1}), Some(1)).await;
    assert_eq!((absent.status, absent.body), (400, errors(&[CAS_MISMATCH])));
    assert!(double.secret("absent").is_none());
}

#[tokio::test]
async fn cas_required_on_the_key_or_the_mount_refuses_writes_without_cas() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    let set = vault
        .call(
            "POST",
            "secret/metadata/strict",
            Some(json!({"cas_required": true})),
        )
        .await;
    assert_eq!(set.status, 204);
    let without = vault.write("strict", json!({"a": 1}), None).await;
    assert_eq!(
        (without.status, without.body),
        (400, errors(&[CAS_REQUIRED]))
    );
    let with = vault.write("strict", json!({"a": 1}), Some(0)).await;
    assert_eq!(with.status, 200);

    let loose = vault.write("loose", json!({"a": 1}), None).await;
    assert_eq!(loose.status, 200);
    let configured = vault
        .call("POST", "secret/config", Some(json!({"cas_required": true})))
        .await;
    assert_eq!(configured.status, 204);
    assert!(double.config().cas_required);
    let refused = vault.write("loose", json!({"a": 2}), None).await;
    assert_eq!(
        (refused.status, refused.body),
        (400, errors(&[CAS_REQUIRED]))
    );

    // Turning it off on a key while the mount requires it is ignored, with Vault's warning.
    let ignored = vault
        .call(
            "POST",
            "secret/metadata/loose",
            Some(json!({"cas_required": false})),
        )
        .await;
    assert_eq!(ignored.status, 200);
    assert_eq!(
        ignored.body["warnings"][0],
        "\"cas_required\" set to false, but is mandated by backend config. This value will be ignored."
    );
    let still_refused = vault.write("loose", json!({"a": 2}), None).await;
    assert_eq!(still_refused.status, 400);
}

#[tokio::test]
async fn custom_metadata_is_set_read_replaced_patched_and_validated() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault.write("app", json!({"v": 1}), None).await;

    let set = vault
        .call(
            "POST",
            "secret/metadata/app",
            Some(json!({"custom_metadata": {"state": "intent", "rotation": "r-1"}})),
        )
        .await;
    assert_eq!((set.status, set.body), (204, Value::Null));

    let metadata = vault.call("GET", "secret/metadata/app", None).await;
    assert_eq!(metadata.status, 200);
    assert_kv_envelope(&metadata.body);
    let data = &metadata.body["data"];
    assert_eq!(
        keys_of(data),
        names(&[
            "cas_required",
            "created_time",
            "current_version",
            "custom_metadata",
            "delete_version_after",
            "max_versions",
            "oldest_version",
            "updated_time",
            "versions",
        ])
    );
    assert_eq!(
        data["custom_metadata"],
        json!({"state": "intent", "rotation": "r-1"})
    );
    assert_eq!(data["current_version"], 1);
    assert_eq!(data["oldest_version"], 0);
    assert_eq!(data["max_versions"], 0);
    assert_eq!(data["cas_required"], false);
    assert_eq!(data["delete_version_after"], "0s");
    assert_rfc3339_with_nanos(&data["created_time"]);
    assert_rfc3339_with_nanos(&data["updated_time"]);
    assert_eq!(keys_of(&data["versions"]), names(&["1"]));
    assert_eq!(
        keys_of(&data["versions"]["1"]),
        names(&["created_time", "deletion_time", "destroyed"])
    );

    // Data reads carry the key's custom_metadata too.
    let read = vault.read("app").await;
    assert_eq!(
        read.body["data"]["metadata"]["custom_metadata"]["state"],
        "intent"
    );

    // POST replaces the whole map (and leaves the versions alone).
    vault
        .call(
            "POST",
            "secret/metadata/app",
            Some(json!({"custom_metadata": {"state": "pending"}})),
        )
        .await;
    let replaced = double.secret("app").expect("the key");
    assert_eq!(replaced.current_version, 1);
    assert_eq!(
        replaced.custom_metadata.expect("custom metadata"),
        [("state".to_owned(), "pending".to_owned())].into()
    );

    // PATCH merges: new keys are added, null removes one.
    let patched = vault
        .patch(
            "secret/metadata/app",
            json!({"custom_metadata": {"rotation": "r-2", "state": null}}),
        )
        .await;
    assert_eq!(patched.status, 204);
    let after_patch = vault.call("GET", "secret/metadata/app", None).await;
    assert_eq!(
        after_patch.body["data"]["custom_metadata"],
        json!({"rotation": "r-2"})
    );

    // Vault's limits: non-empty values, at most 64 keys.
    let empty_value = vault
        .call(
            "POST",
            "secret/metadata/app",
            Some(json!({"custom_metadata": {"state": ""}})),
        )
        .await;
    assert_eq!(empty_value.status, 400);
    assert_eq!(
        empty_value.body,
        errors(&[
            "1 error occurred:\n\t* custom_metadata validation failed: length of value for key \"state\" is 0 but must be 0 < len(value) <= 512\n\n"
        ])
    );
    let too_many: serde_json::Map<String, Value> = (0..65)
        .map(|n| (format!("k{n}"), Value::String("v".to_owned())))
        .collect();
    let refused = vault
        .call(
            "POST",
            "secret/metadata/app",
            Some(json!({ "custom_metadata": too_many })),
        )
        .await;
    assert_eq!(refused.status, 400);
    assert!(
        refused.body["errors"][0]
            .as_str()
            .expect("an error text")
            .contains("payload must contain at most 64 keys, provided 65")
    );
    assert_eq!(
        double.secret("app").expect("the key").custom_metadata,
        Some([("rotation".to_owned(), "r-2".to_owned())].into())
    );
}

#[tokio::test]
async fn metadata_written_before_any_version_creates_an_empty_key() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault
        .call(
            "POST",
            "secret/metadata/fresh",
            Some(json!({"max_versions": 3, "custom_metadata": {"owner": "rotator"}})),
        )
        .await;

    let metadata = vault.call("GET", "secret/metadata/fresh", None).await;
    assert_eq!(metadata.status, 200);
    assert_eq!(metadata.body["data"]["current_version"], 0);
    assert_eq!(metadata.body["data"]["versions"], json!({}));
    let read = vault.read("fresh").await;
    assert_eq!((read.status, read.body), (404, errors(&[])));

    // The key has no version yet, so cas=0 still creates.
    let created = vault.write("fresh", json!({"a": 1}), Some(0)).await;
    assert_eq!(created.status, 200);
    assert_eq!(
        created.body["data"]["custom_metadata"],
        json!({"owner": "rotator"})
    );
}

#[tokio::test]
async fn soft_delete_undelete_and_destroy_behave_like_vault() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault.write("s", json!({"v": 1}), None).await;
    vault.write("s", json!({"v": 2}), None).await;

    let deleted = vault.call("DELETE", "secret/data/s", None).await;
    assert_eq!((deleted.status, deleted.body), (204, Value::Null));
    let gone = vault.read("s").await;
    assert_eq!(gone.status, 404);
    assert_kv_envelope(&gone.body);
    assert_eq!(gone.body["data"]["data"], Value::Null);
    assert_eq!(gone.body["data"]["metadata"]["version"], 2);
    assert_rfc3339_with_nanos(&gone.body["data"]["metadata"]["deletion_time"]);
    assert_eq!(gone.body["data"]["metadata"]["destroyed"], false);
    let older = vault.call("GET", "secret/data/s?version=1", None).await;
    assert_eq!(older.status, 200);
    assert_eq!(older.body["data"]["data"], json!({"v": 1}));

    // A soft-deleted key still exists: cas=0 is refused, cas=current writes version 3.
    let recreate = vault.write("s", json!({"v": 3}), Some(0)).await;
    assert_eq!(
        (recreate.status, recreate.body),
        (400, errors(&[CAS_MISMATCH]))
    );
    let next = vault.write("s", json!({"v": 3}), Some(2)).await;
    assert_eq!(next.body["data"]["version"], 3);

    let undeleted = vault
        .call("POST", "secret/undelete/s", Some(json!({"versions": [2]})))
        .await;
    assert_eq!(undeleted.status, 204);
    let back = vault.call("GET", "secret/data/s?version=2", None).await;
    assert_eq!(back.body["data"]["data"], json!({"v": 2}));
    assert_eq!(back.body["data"]["metadata"]["deletion_time"], "");

    let deleted_one = vault
        .call("POST", "secret/delete/s", Some(json!({"versions": [1]})))
        .await;
    assert_eq!(deleted_one.status, 204);
    let first = vault.call("GET", "secret/data/s?version=1", None).await;
    assert_eq!(first.status, 404);

    let destroyed = vault
        .call("PUT", "secret/destroy/s", Some(json!({"versions": [1, 2]})))
        .await;
    assert_eq!(destroyed.status, 204);
    let second = vault.call("GET", "secret/data/s?version=2", None).await;
    assert_eq!(second.status, 404);
    assert_eq!(second.body["data"]["data"], Value::Null);
    assert_eq!(second.body["data"]["metadata"]["destroyed"], true);
    // Destroyed data cannot come back.
    vault
        .call("POST", "secret/undelete/s", Some(json!({"versions": [2]})))
        .await;
    assert_eq!(
        vault
            .call("GET", "secret/data/s?version=2", None)
            .await
            .status,
        404
    );
    let stored = double.secret("s").expect("the key");
    assert!(stored.versions[&2].destroyed && stored.versions[&2].data.is_none());
    assert_eq!(
        stored.versions[&3].data,
        Some(json!({"v": 3}).as_object().cloned().expect("map"))
    );

    let metadata = vault.call("GET", "secret/metadata/s", None).await;
    assert_eq!(metadata.body["data"]["versions"]["1"]["destroyed"], true);
    assert_ne!(metadata.body["data"]["versions"]["1"]["deletion_time"], "");
    assert_eq!(metadata.body["data"]["versions"]["3"]["destroyed"], false);

    let no_versions = vault.call("POST", "secret/delete/s", Some(json!({}))).await;
    assert_eq!(
        (no_versions.status, no_versions.body),
        (400, errors(&["No version number provided"]))
    );
}

#[tokio::test]
async fn deleting_metadata_removes_every_version_and_the_key() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault.write("doomed", json!({"v": 1}), None).await;
    vault.write("doomed", json!({"v": 2}), None).await;

    let deleted = vault.call("DELETE", "secret/metadata/doomed", None).await;
    assert_eq!(deleted.status, 204);
    assert!(double.secret("doomed").is_none());
    for path in [
        "secret/data/doomed",
        "secret/metadata/doomed",
        "secret/data/doomed?version=1",
    ] {
        let answer = vault.call("GET", path, None).await;
        assert_eq!((answer.status, answer.body), (404, errors(&[])), "{path}");
    }
    let reborn = vault.write("doomed", json!({"v": "new"}), Some(0)).await;
    assert_eq!(reborn.body["data"]["version"], 1);
}

#[tokio::test]
async fn old_versions_are_trimmed_past_max_versions() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    vault
        .call(
            "POST",
            "secret/metadata/few",
            Some(json!({"max_versions": 2})),
        )
        .await;
    for n in 1..=4 {
        vault.write("few", json!({ "n": n }), None).await;
    }
    let metadata = vault.call("GET", "secret/metadata/few", None).await;
    assert_eq!(
        keys_of(&metadata.body["data"]["versions"]),
        names(&["3", "4"])
    );
    assert_eq!(metadata.body["data"]["oldest_version"], 3);
    assert_eq!(metadata.body["data"]["current_version"], 4);
    let trimmed = vault.call("GET", "secret/data/few?version=1", None).await;
    assert_eq!((trimmed.status, trimmed.body), (404, errors(&[])));

    // Unset everywhere, Vault keeps 10.
    for n in 1..=11 {
        vault.write("many", json!({ "n": n }), None).await;
    }
    let many = double.secret("many").expect("the key");
    assert_eq!(many.versions.len(), 10);
    assert_eq!(many.oldest_version, 2);
    assert_eq!(many.versions.keys().next(), Some(&2));
}

#[tokio::test]
async fn data_patch_merges_into_a_new_version() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault
        .write(
            "p",
            json!({"keep": "yes", "drop": "me", "nested": {"a": 1}}),
            None,
        )
        .await;

    let patched = vault
        .patch(
            "secret/data/p",
            json!({"options": {"cas": 1}, "data": {"drop": null, "nested": {"b": 2}, "new": "x"}}),
        )
        .await;
    assert_eq!(patched.status, 200, "{:?}", patched.body);
    assert_eq!(patched.body["data"]["version"], 2);
    assert_eq!(
        vault.read("p").await.body["data"]["data"],
        json!({"keep": "yes", "nested": {"a": 1, "b": 2}, "new": "x"})
    );

    let stale = vault
        .patch(
            "secret/data/p",
            json!({"options": {"cas": 1}, "data": {"x": 1}}),
        )
        .await;
    assert_eq!((stale.status, stale.body), (400, errors(&[CAS_MISMATCH])));
    let wrong_type = vault
        .send(
            "PATCH",
            "secret/data/p",
            Some(json!({"data": {"x": 1}})),
            &[("Content-Type", "application/json")],
        )
        .await;
    assert_eq!(wrong_type.status, 415);
    let absent = vault
        .patch("secret/data/absent", json!({"data": {"x": 1}}))
        .await;
    assert_eq!(absent.status, 404);
    assert_eq!(double.secret("p").expect("the key").current_version, 2);
}

#[tokio::test]
async fn requests_without_the_right_token_are_refused_with_permission_denied() {
    let double = Kv2Double::start(TOKEN).await;
    double.seed(
        "guarded",
        json!({"v": 1}).as_object().cloned().expect("map"),
    );

    for token in [None, Some(""), Some("hvs.wrong")] {
        let vault = Vault::with_token(&double, token);
        for (method, path) in [
            ("GET", "secret/data/guarded"),
            ("POST", "secret/data/guarded"),
            ("GET", "secret/metadata/guarded"),
            ("LIST", "secret/metadata/"),
            ("GET", "auth/token/lookup-self"),
            ("GET", "elsewhere/anything"),
        ] {
            let body = (method == "POST").then(|| json!({"data": {"v": "x"}}));
            let answer = vault.call(method, path, body).await;
            assert_eq!(
                (answer.status, answer.body),
                (403, errors(&[PERMISSION_DENIED])),
                "{method} {path} with {token:?}"
            );
        }
    }
    assert_eq!(
        double.secret("guarded").expect("the key").current_version,
        1
    );

    // The Authorization: Bearer form is accepted as well.
    let bearer = Vault::with_token(&double, None)
        .send(
            "GET",
            "secret/data/guarded",
            None,
            &[("Authorization", &format!("Bearer {TOKEN}"))],
        )
        .await;
    assert_eq!(bearer.status, 200);

    // A replaced token stops working at once.
    double.set_token("hvs.next");
    let old = Vault::new(&double).read("guarded").await;
    assert_eq!((old.status, old.body), (403, errors(&[PERMISSION_DENIED])));
    let new = Vault::with_token(&double, Some("hvs.next"))
        .read("guarded")
        .await;
    assert_eq!(new.status, 200);
}

#[tokio::test]
async fn a_policy_grants_capabilities_per_path_checked_before_the_engine() {
    let double = Kv2Double::start(TOKEN).await;
    double.seed("app/db", json!({"v": 1}).as_object().cloned().expect("map"));
    double.set_policy(Some(&[
        ("secret/data/app/db", &["read", "update"]),
        ("secret/data/app/new", &["update"]),
        ("secret/data/app/*", &["create"]),
        ("secret/metadata/app/*", &["read", "list"]),
        ("secret/metadata/app/db", &["deny"]),
    ]));
    let vault = Vault::new(&double);
    let denied = (403, errors(&[PERMISSION_DENIED]));
    let answer = |a: Answer| (a.status, a.body);

    assert_eq!(vault.read("app/db").await.status, 200);
    // An existing key needs update, a new one create; the exact rule wins over the glob.
    assert_eq!(
        vault.write("app/db", json!({"v": 2}), None).await.status,
        200
    );
    assert_eq!(
        answer(vault.write("app/new", json!({"v": 1}), None).await),
        denied
    );
    assert_eq!(
        vault.write("app/other", json!({"v": 1}), None).await.status,
        200
    );
    assert_eq!(
        answer(vault.write("app/other", json!({"v": 2}), None).await),
        denied
    );
    // deny wins; a path no rule matches is denied; the token's own endpoints stay allowed.
    assert_eq!(
        answer(vault.call("GET", "secret/metadata/app/db", None).await),
        denied
    );
    assert_eq!(
        vault
            .call("GET", "secret/metadata/app/other", None)
            .await
            .status,
        200
    );
    assert_eq!(
        vault.call("LIST", "secret/metadata/app", None).await.status,
        200
    );
    assert_eq!(answer(vault.read("elsewhere").await), denied);
    assert_eq!(
        answer(
            vault
                .call("DELETE", "secret/metadata/app/other", None)
                .await
        ),
        denied
    );
    assert_eq!(
        vault
            .call("GET", "auth/token/lookup-self", None)
            .await
            .status,
        200
    );

    // The policy is checked before the engine: an allowed write can still be refused by it.
    let no_data = vault
        .call(
            "POST",
            "secret/data/app/db",
            Some(json!({"options": {"cas": 99}})),
        )
        .await;
    assert_eq!(answer(no_data), (400, errors(&["no data provided"])));
    assert_eq!(double.secret("app/db").expect("the key").current_version, 2);

    double.set_policy(None);
    assert_eq!(
        vault
            .call("DELETE", "secret/metadata/app/other", None)
            .await
            .status,
        204
    );
}

#[tokio::test]
async fn a_metadata_write_naming_no_field_changes_nothing() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    let empty = vault
        .call("POST", "secret/metadata/absent", Some(json!({})))
        .await;
    assert_eq!((empty.status, empty.body), (204, Value::Null));
    assert!(
        double.secret("absent").is_none(),
        "Vault's fast path creates no key"
    );

    vault
        .call(
            "POST",
            "secret/metadata/kept",
            Some(json!({"custom_metadata": {"owner": "rotator"}})),
        )
        .await;
    let before = double.secret("kept").expect("the key");
    let empty = vault
        .call("POST", "secret/metadata/kept", Some(json!({})))
        .await;
    assert_eq!(empty.status, 204);
    assert_eq!(double.secret("kept").expect("the key"), before);
}

#[tokio::test]
async fn token_self_endpoints_and_health_answer_like_vault() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    let lookup = vault.call("GET", "auth/token/lookup-self", None).await;
    assert_eq!(lookup.status, 200);
    let data = &lookup.body["data"];
    for field in [
        "accessor",
        "creation_time",
        "creation_ttl",
        "expire_time",
        "policies",
        "ttl",
    ] {
        assert!(!data[field].is_null(), "lookup-self lacks {field}");
    }
    assert_eq!(data["renewable"], true);
    assert_eq!(data["type"], "service");
    assert!(data["ttl"].as_i64().expect("ttl") > 0);

    let renewed = vault
        .call(
            "POST",
            "auth/token/renew-self",
            Some(json!({"increment": "1h"})),
        )
        .await;
    assert_eq!(renewed.status, 200);
    assert_eq!(renewed.body["auth"]["lease_duration"], 3600);
    assert_eq!(renewed.body["auth"]["renewable"], true);
    assert_eq!(renewed.body["data"], Value::Null);

    let health = Vault::with_token(&double, None)
        .call("GET", "sys/health", None)
        .await;
    assert_eq!(health.status, 200);
    assert_eq!(health.body["initialized"], true);
    assert_eq!(health.body["sealed"], false);
    assert_eq!(health.body["standby"], false);
}

#[tokio::test]
async fn list_returns_the_keys_one_level_below_a_folder() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    for key in [
        "netsuite/erp",
        "netsuite/erp/pending",
        "netsuite/crm",
        "other",
    ] {
        vault.write(key, json!({"v": 1}), None).await;
    }

    let listed = vault.call("LIST", "secret/metadata/netsuite", None).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.body["data"], json!({"keys": ["crm", "erp", "erp/"]}));
    let root = vault.call("GET", "secret/metadata/?list=true", None).await;
    assert_eq!(root.body["data"]["keys"], json!(["netsuite/", "other"]));
    let empty = vault.call("LIST", "secret/metadata/nothing/", None).await;
    assert_eq!((empty.status, empty.body), (404, errors(&[])));
}

#[tokio::test]
async fn paths_outside_the_kv2_api_answer_404() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    let v1_style = vault.call("GET", "secret/app/db", None).await;
    assert_eq!(v1_style.status, 404);
    assert_eq!(v1_style.body["data"], Value::Null);
    assert!(
        v1_style.body["warnings"][0]
            .as_str()
            .expect("a warning")
            .starts_with("Invalid path for a versioned K/V secrets engine.")
    );
    let other_mount = vault.call("GET", "kv/data/app", None).await;
    assert_eq!(other_mount.status, 404);
    // A LIST is of a folder, `data/app/`, which no KV v2 pattern serves.
    let list_on_data = vault.call("LIST", "secret/data/app", None).await;
    assert_eq!(list_on_data.status, 404);
    assert!(
        list_on_data.body["warnings"][0]
            .as_str()
            .expect("a warning")
            .ends_with("use 'vault kv list' for this operation.")
    );
    let delete_config = vault.call("DELETE", "secret/config", None).await;
    assert_eq!(
        (delete_config.status, delete_config.body),
        (405, errors(&["unsupported operation"]))
    );
}

#[tokio::test]
async fn a_mount_other_than_secret_is_served_at_its_own_path() {
    let double = Kv2Double::start_with_mount(TOKEN, "kv-rotator").await;
    let vault = Vault::new(&double);
    let written = vault
        .call("POST", "kv-rotator/data/x", Some(json!({"data": {"a": 1}})))
        .await;
    assert_eq!(written.status, 200);
    let default_mount = vault.read("x").await;
    assert_eq!(default_mount.status, 404);
    assert_eq!(double.mount(), "kv-rotator");
}

#[tokio::test]
async fn state_survives_a_stop_and_a_restart_on_the_same_port() {
    let mut double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault.write("kept", json!({"v": 1}), None).await;
    let address = double.address();

    double.stop().await;
    assert!(!double.is_running());
    let down = vault
        .http
        .get(format!("{address}/v1/secret/data/kept"))
        .header("X-Vault-Token", TOKEN)
        .send()
        .await
        .expect_err("a stopped double refuses connections");
    assert!(down.is_connect(), "{down:?}");

    double.restart().await;
    assert_eq!(double.address(), address);
    let back = vault.read("kept").await;
    assert_eq!(back.status, 200);
    assert_eq!(back.body["data"]["data"], json!({"v": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_many_racing_check_and_set_writes_exactly_one_wins() {
    let double = Kv2Double::start(TOKEN).await;
    let base = double.address();

    let race = |cas: u64| {
        let base = base.clone();
        async move {
            let writers: Vec<_> = (0..16)
                .map(|writer| {
                    let base = base.clone();
                    tokio::spawn(async move {
                        let vault = Vault {
                            http: reqwest::Client::new(),
                            base,
                            token: Some(TOKEN.to_owned()),
                        };
                        vault
                            .write("race", json!({ "writer": writer }), Some(cas))
                            .await
                    })
                })
                .collect();
            let mut statuses = Vec::new();
            for writer in writers {
                let answer = writer.await.expect("a writer task");
                if answer.status == 400 {
                    assert_eq!(answer.body, errors(&[CAS_MISMATCH]));
                }
                statuses.push(answer.status);
            }
            statuses
        }
    };

    for cas in [0, 1] {
        let statuses = race(cas).await;
        assert_eq!(statuses.iter().filter(|status| **status == 200).count(), 1);
        assert_eq!(statuses.iter().filter(|status| **status == 400).count(), 15);
    }
    assert_eq!(double.secret("race").expect("the key").current_version, 2);
}

#[tokio::test]
async fn requests_are_counted_by_method_and_kind_with_their_namespace() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);
    vault.write("c", json!({"v": 1}), None).await;
    vault.read("c").await;
    vault.read("c").await;
    vault
        .send(
            "GET",
            "secret/metadata/c",
            None,
            &[("X-Vault-Namespace", "team-a/")],
        )
        .await;
    Vault::with_token(&double, None).read("c").await;

    assert_eq!(double.request_count("POST", PathKind::Data), 1);
    assert_eq!(double.request_count("GET", PathKind::Data), 3);
    assert_eq!(double.request_count("GET", PathKind::Metadata), 1);
    let requests = double.requests();
    assert_eq!(requests[3].namespace.as_deref(), Some("team-a/"));
    assert_eq!(requests[3].path, "c");
    assert_eq!(requests[4].status, 403);

    double.require_namespace(Some("team-a"));
    let outside = vault.read("c").await;
    assert_eq!(outside.status, 403);
    let inside = vault
        .send(
            "GET",
            "secret/data/c",
            None,
            &[("X-Vault-Namespace", "team-a")],
        )
        .await;
    assert_eq!(inside.status, 200);
}

#[tokio::test]
async fn injected_faults_refuse_or_lose_answers() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    double.refuse_next(1, 503);
    let refused = vault.write("f", json!({"v": 1}), Some(0)).await;
    assert_eq!(refused.status, 503);
    assert!(
        double.secret("f").is_none(),
        "a refused write is not applied"
    );

    double.lose_next_answers(1);
    let lost = vault.write("f", json!({"v": 1}), Some(0)).await;
    assert_eq!(lost.status, 500);
    assert_eq!(
        double
            .secret("f")
            .expect("the write happened")
            .current_version,
        1
    );
    let retried = vault.write("f", json!({"v": 1}), Some(0)).await;
    assert_eq!(
        (retried.status, retried.body),
        (400, errors(&[CAS_MISMATCH]))
    );
}

#[tokio::test]
async fn mount_config_reads_back_and_sets_defaults_for_every_key() {
    let double = Kv2Double::start(TOKEN).await;
    let vault = Vault::new(&double);

    let initial = vault.call("GET", "secret/config", None).await;
    assert_eq!(
        initial.body["data"],
        json!({"cas_required": false, "delete_version_after": "0s", "max_versions": 0})
    );
    vault
        .call(
            "POST",
            "secret/config",
            Some(json!({"max_versions": 3, "delete_version_after": "3h25m19s"})),
        )
        .await;
    let updated = vault.call("GET", "secret/config", None).await;
    assert_eq!(updated.body["data"]["max_versions"], 3);
    assert_eq!(updated.body["data"]["delete_version_after"], "3h25m19s");
    assert_eq!(
        double.config(),
        MountConfig {
            max_versions: 3,
            cas_required: false,
            delete_version_after_secs: 12_319,
        }
    );

    // delete_version_after gives each new version a deletion_time ahead of now; it still reads.
    let written = vault.write("timed", json!({"v": 1}), None).await;
    assert_rfc3339_with_nanos(&written.body["data"]["deletion_time"]);
    assert_eq!(vault.read("timed").await.status, 200);
    for n in 2..=5 {
        vault.write("timed", json!({ "n": n }), None).await;
    }
    assert_eq!(double.secret("timed").expect("the key").versions.len(), 3);
}

/// The Vault store may use vaultrs; its KV v2, token and health calls must understand the
/// double's answers as they understand Vault's.
#[tokio::test]
async fn vaultrs_reads_and_writes_through_the_double() {
    use std::collections::HashMap;
    use vaultrs::api::kv2::requests::{SetSecretMetadataRequest, SetSecretRequestOptions};
    use vaultrs::client::{VaultClient, VaultClientSettingsBuilder};
    use vaultrs::error::ClientError;

    let double = Kv2Double::start(TOKEN).await;
    let client = VaultClient::new(
        VaultClientSettingsBuilder::default()
            .address(double.address())
            .token(TOKEN)
            .build()
            .expect("vaultrs settings"),
    )
    .expect("a vaultrs client");

    let created = vaultrs::kv2::set_with_options(
        &client,
        "secret",
        "netsuite/erp",
        &json!({"token_id": "t-1"}),
        SetSecretRequestOptions { cas: 0 },
    )
    .await
    .expect("a cas=0 create");
    assert_eq!(created.version, 1);
    assert!(created.custom_metadata.is_none());

    let conflict = vaultrs::kv2::set_with_options(
        &client,
        "secret",
        "netsuite/erp",
        &json!({"token_id": "t-2"}),
        SetSecretRequestOptions { cas: 0 },
    )
    .await
    .expect_err("a second cas=0 create");
    match conflict {
        ClientError::APIError { code, errors } => {
            assert_eq!((code, errors), (400, vec![CAS_MISMATCH.to_owned()]));
        }
        other => panic!("expected Vault's API error, got {other:?}"),
    }

    let data: HashMap<String, String> = vaultrs::kv2::read(&client, "secret", "netsuite/erp")
        .await
        .expect("a read");
    assert_eq!(data["token_id"], "t-1");

    vaultrs::kv2::set_metadata(
        &client,
        "secret",
        "netsuite/erp",
        Some(
            SetSecretMetadataRequest::builder()
                .custom_metadata(HashMap::from([("state".to_owned(), "current".to_owned())])),
        ),
    )
    .await
    .expect("a metadata write");
    let metadata = vaultrs::kv2::read_metadata(&client, "secret", "netsuite/erp")
        .await
        .expect("a metadata read");
    assert_eq!(metadata.current_version, 1);
    assert_eq!(
        metadata.custom_metadata.expect("custom metadata")["state"],
        "current"
    );
    assert_eq!(metadata.versions.len(), 1);

    let keys = vaultrs::kv2::list(&client, "secret", "netsuite")
        .await
        .expect("a list");
    assert_eq!(keys, vec!["erp".to_owned()]);

    vaultrs::kv2::delete_latest(&client, "secret", "netsuite/erp")
        .await
        .expect("a soft delete");
    let deleted = vaultrs::kv2::read::<Value>(&client, "secret", "netsuite/erp")
        .await
        .expect_err("a read of a deleted version");
    // Vault's 404 for a deleted version carries metadata and no `errors`, so vaultrs reports it
    // as a raw server response rather than an APIError: a store must treat both as "not found".
    // (rustify, which holds that error type, is not a dependency of ours: read its Debug form.)
    assert!(
        matches!(&deleted, ClientError::RestClientError { .. })
            && format!("{deleted:?}").contains("ServerResponseError { code: 404"),
        "{deleted:?}"
    );

    let token = vaultrs::token::lookup_self(&client)
        .await
        .expect("lookup-self");
    assert!(token.ttl > 0);
    let renewed = vaultrs::token::renew_self(&client, Some("1h"))
        .await
        .expect("renew-self");
    assert_eq!(renewed.lease_duration, 3600);
    let health = vaultrs::sys::health(&client).await.expect("health");
    assert!(health.initialized && !health.sealed);
}

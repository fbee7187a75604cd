//! File store: the current token in one JSON file that applications read, and the rotation's
//! bookkeeping in a state file beside it. The embedded default for `demo` and for trying the tool
//! without infrastructure.
//!
//! Layout, for `path = /var/lib/rotator/erp.json`:
//! - `erp.json`: exactly the reader-facing [`CredentialRecord`] of the current token, nothing else.
//!   Absent until the first promote or import.
//! - `erp.json.state.json` and `erp.json.state.swap`: two slots for the rotation's bookkeeping
//!   (intent, pending and previous, which carry token secrets, so they get the same protection
//!   as the reader file). Each holds `{"format":3,"sequence":N,"crc32":..,"state":{..}}`; the
//!   valid one with the higher sequence is the state, the other the version before it. Slots
//!   of format 2 (a `sha256` where format 3 has its `crc32`), written by earlier versions, are
//!   still read; the next write replaces them slot by slot. The checksum only tells a whole
//!   slot from a torn one (see [`slot_crc32`]).
//! - `erp.json.lock`: empty. Every operation, `load` included, holds an exclusive `flock` on it
//!   for its whole read-check-write, so processes (and several [`FileStore`] values in one
//!   process) take turns; that is what makes the check-and-set operations exact. It is never
//!   deleted: a deleted and re-created lock file would let two processes lock different inodes.
//!
//! The reader file is replaced atomically: the whole new file is written beside it with mode
//! 0600 before any byte, fsynced, renamed over it, and the directory fsynced, so a reader sees
//! the old file or the new one, never a mix, and an application may keep the old one open.
//!
//! The state, which only this store reads (under the lock), is written in place into the slot
//! that does not hold the newest version, padded with spaces so that its length does not change
//! from one version to the next, then `fdatasync`ed: no inode is made or freed, no name changes,
//! and the file system has only data to flush, where a rename would cost two fsyncs and a
//! journal commit per write (see `docs/performance.md`). A crash in the middle of that write
//! leaves the slot torn; its checksum then fails, and `read` uses the other slot, which still
//! holds the version before the unfinished write. A slot file is created only once, whole,
//! through a temp file and a rename. A state file of format 1 (one file, replaced by rename,
//! from earlier versions) is read as the oldest version, and the first write goes to the other
//! slot. A missing parent directory is created with mode 0700. A writing operation also tightens
//! an existing file that is readable by group or others (left so by hand); `load` only warns
//! about it.
//!
//! Crash consistency. Only `promote` changes both files, in this order:
//! 1. state file: `previous` := the old current (with its `revoke_after`); intent and pending stay;
//! 2. reader file := the pending token;
//! 3. state file: intent and pending are dropped.
//!
//! A crash after 1 leaves a previous whose token id is the current's. The promotion has not
//! happened (readers still read that token), so that previous is read as absent; before step 1
//! it was absent or revoked, so nothing that needs revoking is lost, and a repeated `promote`
//! does the promotion again. A crash after 2 leaves a pending token whose rotation is the
//! current's: the promotion has happened, so pending and its intent are read as absent. `load`
//! only reads and reports the repaired state; the next writing operation persists it. Every
//! other operation writes a single file, whole or (a torn slot) not at all.
//!
//! Step 3 is therefore not written by `promote` at all: the state after step 2 already reads
//! as the promoted one, and the next writing operation (the revocation's
//! `mark_previous_revoked`, at once with a zero grace window, or the next rotation's intent)
//! persists the repair with its own write. That saves a write and its `fdatasync` per rotation;
//! until then the newest slot keeps the promoted token as `pending`, a copy of what the reader
//! file holds, under the same protection.
//!
//! Durability: each write is on disk before the operation returns, because the rotation's next
//! step depends on it: the intent before `issuetoken` (else a token could be issued that no
//! record names), pending before `tokeninfo` and everything after (else a crash loses a valid
//! token), promote's step 1 before its step 2 (else a crash after the rename loses the old
//! token, which then is never revoked), the reader file's data before its rename and the
//! rename before the old token is revoked (else a crash leaves readers a revoked token or an
//! empty file), and the revocation's record (else the next run revokes it again, harmless
//! but a call). `docs/performance.md` counts them.

mod config;
mod fault;
mod files;
mod memo;
mod slots;
mod snapshot;
mod steps;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    CredentialRecord, Intent, LoginLatch, PreviousToken, SecretStore, StoreError, StoreErrorKind,
    StoreState,
};

pub use config::FileStoreConfig;
use fault::*;
pub(crate) use files::parse_files;
use files::*;
use memo::Memo;
use slots::*;
use snapshot::*;
use steps::*;

/// A [`SecretStore`] kept in files on the local file system.
#[derive(Debug)]
pub struct FileStore {
    files: Files,
    /// What the last operation read or wrote, while the engine holds the store (memo.rs).
    memo: Mutex<Option<Box<Memo>>>,
    /// How many holds are open ([`SecretStore::hold`]); the memo goes when the last is released.
    holds: AtomicUsize,
}

impl FileStore {
    /// Touches no file: the directory and files appear with the first write.
    pub fn new(config: &FileStoreConfig) -> FileStore {
        FileStore {
            files: Files::new(&config.path),
            memo: Mutex::new(None),
            holds: AtomicUsize::new(0),
        }
    }

    fn memo(&self) -> std::sync::MutexGuard<'_, Option<Box<Memo>>> {
        // A panic while it was held left at worst a memo that misses: it is checked on use.
        self.memo
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one blocking operation on the files off the async runtime and names its failure.
    /// While the store is held, the operation gets the memo and hands it back.
    async fn run<T, F>(&self, operation: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Files) -> Result<T, Fault> + Send + 'static,
    {
        let mut files = self.files.clone();
        files.remember = self.holds.load(Ordering::Acquire) > 0;
        if files.remember {
            files.memo = self.memo().take();
        }
        let outcome = tokio::task::spawn_blocking(move || {
            let result = work(&mut files);
            (result, files.memo)
        })
        .await;
        let outcome = outcome.map(|(result, memo)| {
            let mut kept = self.memo();
            // Checked under the memo's lock, as `release` clears it: no memo outlives the hold.
            if memo.is_some() && self.holds.load(Ordering::Acquire) > 0 {
                *kept = memo;
            }
            result
        });
        let fault = match outcome {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(fault)) => fault,
            Err(join) => Fault {
                kind: StoreErrorKind::Failed,
                detail: if join.is_panic() {
                    "the file operation panicked".to_string()
                } else {
                    "the file operation was cancelled".to_string()
                },
            },
        };
        Err(StoreError::new(
            self.describe(),
            operation,
            fault.kind,
            fault.detail,
        ))
    }
}

#[async_trait::async_trait]
impl SecretStore for FileStore {
    fn describe(&self) -> String {
        format!("file {}", self.files.reader.display())
    }

    fn hold(&self) {
        self.holds.fetch_add(1, Ordering::AcqRel);
    }

    fn release(&self) {
        let mut kept = self.memo();
        if self.holds.fetch_sub(1, Ordering::AcqRel) == 1 {
            *kept = None;
        }
    }

    async fn load(&self) -> Result<StoreState, StoreError> {
        self.run("load", load).await
    }

    async fn begin_rotation(&self, intent: &Intent) -> Result<(), StoreError> {
        let intent = intent.clone();
        self.run("begin_rotation", move |files| {
            begin_rotation(files, &intent)
        })
        .await
    }

    async fn stage_pending(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.run("stage_pending", move |files| stage_pending(files, &token))
            .await
    }

    async fn promote(
        &self,
        rotation_id: Uuid,
        revoke_previous_after: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.run("promote", move |files| {
            promote(files, rotation_id, revoke_previous_after, usize::MAX)
        })
        .await
    }

    async fn abandon_rotation(&self, rotation_id: Uuid) -> Result<(), StoreError> {
        self.run("abandon_rotation", move |files| {
            abandon_rotation(files, rotation_id)
        })
        .await
    }

    async fn mark_previous_revoked(
        &self,
        token_id: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let token_id = token_id.to_string();
        self.run("mark_previous_revoked", move |files| {
            mark_previous_revoked(files, &token_id, at)
        })
        .await
    }

    async fn import_current(&self, token: &CredentialRecord) -> Result<(), StoreError> {
        let token = token.clone();
        self.run("import_current", move |files| import_current(files, &token))
            .await
    }

    async fn set_login_latch(&self, latch: Option<&LoginLatch>) -> Result<(), StoreError> {
        let latch = latch.cloned();
        self.run("set_login_latch", move |files| {
            set_login_latch(files, latch)
        })
        .await
    }

    async fn check_writable(&self) -> Result<(), StoreError> {
        self.run("check_writable", |files| check_writable(files))
            .await
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::sync::Arc;

    use chrono::TimeZone;
    use serde_json::{Value, json};
    use tempfile::TempDir;

    use super::*;
    use std::fs::Permissions;
    use std::io;
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    use chrono::{DateTime, Utc};

    use uuid::Uuid;

    use crate::secret::SecretString;
    use crate::store::TokenRecord;
    use crate::store::{
        CredentialRecord, Intent, SecretStore, StoreError, StoreErrorKind, StoreState,
    };

    /// Marks every secret the fixtures plant, so a test can look for any of them in output.
    const SECRET_MARK: &str = "s3cr3t";

    fn at(offset_secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + offset_secs, 0).unwrap()
    }

    fn token(rotation_id: Uuid, n: i64) -> CredentialRecord {
        CredentialRecord::Tba(TokenRecord {
            account_id: "123456_SB1".to_string(),
            realm: "123456_SB1".to_string(),
            consumer_key: Some(SecretString::from(format!("ck-{SECRET_MARK}-{n}"))),
            consumer_secret: Some(SecretString::from(format!("cs-{SECRET_MARK}-{n}"))),
            token_id: format!("tokenid-{n:04}-abcdef"),
            token_secret: SecretString::from(format!("ts-{SECRET_MARK}-{n}")),
            issued_at: at(n),
            rotation_id,
        })
    }

    fn intent(rotation_id: Uuid) -> Intent {
        Intent {
            rotation_id,
            token_name: format!("erp-sync-{rotation_id}"),
            started_at: at(0),
            owner: String::new(),
        }
    }

    struct Fixture {
        _dir: TempDir,
        path: PathBuf,
        store: FileStore,
    }

    impl Fixture {
        fn new() -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("erp.json");
            let store = FileStore::new(&FileStoreConfig { path: path.clone() });
            Fixture {
                _dir: dir,
                path,
                store,
            }
        }

        /// Another `FileStore` value on the same files, as a second process would have.
        fn other_store(&self) -> FileStore {
            FileStore::new(&FileStoreConfig {
                path: self.path.clone(),
            })
        }

        fn slot_path(&self, slot: Slot) -> PathBuf {
            with_suffix(&self.path, slot.suffix())
        }

        /// The first slot, which is also where a legacy state file lives.
        fn state_path(&self) -> PathBuf {
            self.slot_path(Slot::First)
        }

        fn reader_json(&self) -> Value {
            serde_json::from_slice(&fs::read(&self.path).unwrap()).unwrap()
        }

        /// The state as on disk: the `state` of the slot with the higher sequence.
        fn state_json(&self) -> Value {
            [Slot::First, Slot::Second]
                .into_iter()
                .filter_map(|slot| fs::read(self.slot_path(slot)).ok())
                .filter(|bytes| !bytes.is_empty())
                .map(|bytes| serde_json::from_slice::<Value>(&bytes).unwrap())
                // A legacy state file has no sequence: it is the oldest version.
                .max_by_key(|slot| slot["sequence"].as_u64().unwrap_or(0))
                .expect("a state slot")["state"]
                .clone()
        }

        /// Begins and stages rotation number `n`, returning its id.
        async fn stage(&self, n: i64) -> Uuid {
            let rotation_id = Uuid::new_v4();
            self.store
                .begin_rotation(&intent(rotation_id))
                .await
                .unwrap();
            self.store
                .stage_pending(&token(rotation_id, n))
                .await
                .unwrap();
            rotation_id
        }

        /// A whole rotation number `n`, its previous due at `at(n)`.
        async fn rotate(&self, n: i64) -> Uuid {
            let rotation_id = self.stage(n).await;
            self.store.promote(rotation_id, at(n)).await.unwrap();
            rotation_id
        }
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn assert_conflict(result: Result<(), StoreError>) {
        let err = result.expect_err("expected a conflict");
        assert_eq!(err.kind, StoreErrorKind::Conflict, "{err}");
    }

    /// The invariant every crash repair must keep.
    fn assert_previous_is_not_current(state: &StoreState) {
        if let (Some(current), Some(previous)) = (&state.current, &state.previous) {
            assert_ne!(current.id(), previous.token.id());
        }
    }

    #[tokio::test]
    async fn full_cycle_leaves_exactly_the_reader_record_in_the_reader_file() {
        let f = Fixture::new();
        let rotation_id = Uuid::new_v4();

        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent, Some(intent(rotation_id)));
        assert!(state.current.is_none() && state.pending.is_none());

        f.store.stage_pending(&token(rotation_id, 1)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.pending.unwrap().id(), "tokenid-0001-abcdef");
        assert!(!f.path.exists(), "nothing is current before promote");

        f.store.promote(rotation_id, at(3600)).await.unwrap();
        assert_eq!(
            f.reader_json(),
            json!({
                "account_id": "123456_SB1",
                "realm": "123456_SB1",
                "consumer_key": "ck-s3cr3t-1",
                "consumer_secret": "cs-s3cr3t-1",
                "token_id": "tokenid-0001-abcdef",
                "token_secret": "ts-s3cr3t-1",
                "issued_at": "2023-11-14T22:13:21Z",
                "rotation_id": rotation_id.to_string(),
            })
        );
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert!(state.intent.is_none() && state.pending.is_none() && state.previous.is_none());
        // Promote leaves dropping intent and pending to the next write (see the module doc).
        assert_eq!(
            f.state_json()["pending"]["rotation_id"],
            rotation_id.to_string()
        );
        f.store
            .mark_previous_revoked("no-such-token", at(0))
            .await
            .unwrap();
        assert_eq!(
            f.state_json(),
            json!({"intent": null, "pending": null, "previous": null})
        );
    }

    #[tokio::test]
    async fn consumer_pair_is_left_out_of_the_reader_file_when_absent() {
        let f = Fixture::new();
        let CredentialRecord::Tba(mut record) = token(Uuid::new_v4(), 1) else {
            unreachable!("token() makes TBA records")
        };
        record.consumer_key = None;
        record.consumer_secret = None;
        f.store.import_current(&record.into()).await.unwrap();

        let reader = f.reader_json();
        let mut keys: Vec<&str> = reader
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "account_id",
                "issued_at",
                "realm",
                "rotation_id",
                "token_id",
                "token_secret"
            ]
        );
        assert!(
            !f.state_path().exists(),
            "import writes only the reader file"
        );
    }

    #[tokio::test]
    async fn old_current_stays_previous_until_revoked() {
        let f = Fixture::new();
        f.rotate(1).await;
        let second = f.rotate(2).await;

        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.as_ref().unwrap().rotation_id(), second);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.id(), "tokenid-0001-abcdef");
        assert_eq!(previous.revoke_after, at(2));
        assert_eq!(previous.revoked_at, None);

        let third = f.stage(3).await;
        assert_conflict(f.store.promote(third, at(3)).await);
        assert_eq!(f.reader_json()["rotation_id"], second.to_string());

        f.store
            .mark_previous_revoked("tokenid-0001-abcdef", at(100))
            .await
            .unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.previous.unwrap().revoked_at, Some(at(100)));

        f.store.promote(third, at(3)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), third);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.rotation_id(), second);
        assert_eq!(previous.revoked_at, None);
    }

    #[tokio::test]
    async fn import_fills_only_an_empty_store() {
        let f = Fixture::new();
        let imported = token(Uuid::new_v4(), 1);
        f.store.import_current(&imported).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().id(), imported.id());

        // A repeated import of the same token changes nothing; another token is refused.
        f.store.import_current(&imported).await.unwrap();
        assert_conflict(f.store.import_current(&token(Uuid::new_v4(), 2)).await);
        assert_eq!(f.reader_json()["token_id"], imported.id());

        // The first rotation after an import makes the imported token previous.
        f.rotate(3).await;
        let previous = f.store.load().await.unwrap().previous.unwrap();
        assert_eq!(previous.token.id(), imported.id());
    }

    #[tokio::test]
    async fn import_refuses_a_store_with_a_rotation_in_progress() {
        let f = Fixture::new();
        let rotation_id = Uuid::new_v4();
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        assert_conflict(f.store.import_current(&token(Uuid::new_v4(), 1)).await);

        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_conflict(f.store.import_current(&token(Uuid::new_v4(), 1)).await);

        f.store.abandon_rotation(rotation_id).await.unwrap();
        f.store
            .import_current(&token(Uuid::new_v4(), 1))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn begin_rotation_refuses_while_another_rotation_is_in_progress() {
        let f = Fixture::new();
        let first = Uuid::new_v4();
        f.store.begin_rotation(&intent(first)).await.unwrap();
        assert_conflict(f.store.begin_rotation(&intent(Uuid::new_v4())).await);

        f.store.stage_pending(&token(first, 1)).await.unwrap();
        assert_conflict(f.store.begin_rotation(&intent(Uuid::new_v4())).await);
        assert_eq!(f.store.load().await.unwrap().intent, Some(intent(first)));
    }

    #[tokio::test]
    async fn begin_rotation_refuses_a_rotation_that_is_already_current() {
        let f = Fixture::new();
        let done = f.rotate(1).await;
        assert_conflict(f.store.begin_rotation(&intent(done)).await);
        assert!(f.store.load().await.unwrap().intent.is_none());
    }

    #[tokio::test]
    async fn stage_pending_refuses_without_this_rotations_intent() {
        let f = Fixture::new();
        let rotation_id = Uuid::new_v4();
        assert_conflict(f.store.stage_pending(&token(rotation_id, 1)).await);

        f.store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap();
        assert_conflict(f.store.stage_pending(&token(rotation_id, 1)).await);
        assert!(f.store.load().await.unwrap().pending.is_none());
    }

    #[tokio::test]
    async fn stage_pending_refuses_to_replace_a_staged_token_with_another() {
        let f = Fixture::new();
        let rotation_id = f.stage(1).await;
        assert_conflict(f.store.stage_pending(&token(rotation_id, 2)).await);
        let pending = f.store.load().await.unwrap().pending.unwrap();
        assert_eq!(pending.id(), "tokenid-0001-abcdef");
    }

    #[tokio::test]
    async fn promote_refuses_without_this_rotations_pending_token() {
        let f = Fixture::new();
        let current = f.rotate(1).await;
        let before = fs::read(&f.path).unwrap();

        let rotation_id = Uuid::new_v4();
        assert_conflict(f.store.promote(rotation_id, at(9)).await);
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        assert_conflict(f.store.promote(rotation_id, at(9)).await);

        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_conflict(f.store.promote(Uuid::new_v4(), at(9)).await);

        assert_eq!(fs::read(&f.path).unwrap(), before);
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), current);
        assert_eq!(state.pending.unwrap().rotation_id(), rotation_id);
    }

    #[tokio::test]
    async fn repeated_steps_are_harmless() {
        let f = Fixture::new();
        f.rotate(1).await;
        let rotation_id = Uuid::new_v4();
        for _ in 0..2 {
            f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        }
        for _ in 0..2 {
            f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        }
        // A late begin for the same rotation keeps the staged token.
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        assert!(f.store.load().await.unwrap().pending.is_some());
        for _ in 0..2 {
            f.store.promote(rotation_id, at(50)).await.unwrap();
        }
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert_eq!(state.previous.as_ref().unwrap().revoke_after, at(50));

        // Revoking another token, or revoking twice, keeps the first record.
        f.store
            .mark_previous_revoked("tokenid-9999-other", at(60))
            .await
            .unwrap();
        assert_eq!(
            f.store.load().await.unwrap().previous.unwrap().revoked_at,
            None
        );
        for when in [at(70), at(80)] {
            f.store
                .mark_previous_revoked("tokenid-0001-abcdef", when)
                .await
                .unwrap();
        }
        assert_eq!(
            f.store.load().await.unwrap().previous.unwrap().revoked_at,
            Some(at(70))
        );
    }

    #[tokio::test]
    async fn abandon_drops_only_its_own_rotation() {
        let f = Fixture::new();
        let current = f.rotate(1).await;
        let rotation_id = f.stage(2).await;

        f.store.abandon_rotation(Uuid::new_v4()).await.unwrap();
        f.store.abandon_rotation(current).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
        assert_eq!(state.pending.unwrap().rotation_id(), rotation_id);

        for _ in 0..2 {
            f.store.abandon_rotation(rotation_id).await.unwrap();
        }
        let state = f.store.load().await.unwrap();
        assert!(state.intent.is_none() && state.pending.is_none());
        assert_eq!(state.current.unwrap().rotation_id(), current);
    }

    #[tokio::test]
    async fn files_are_owner_only_and_created_directories_are_0700() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("a").join("b").join("erp.json");
        let f = Fixture {
            store: FileStore::new(&FileStoreConfig { path: path.clone() }),
            path,
            _dir: root,
        };
        f.rotate(1).await;
        f.stage(2).await;

        let dir_b = f.path.parent().unwrap();
        assert_eq!(mode(dir_b), 0o700);
        assert_eq!(mode(dir_b.parent().unwrap()), 0o700);
        assert_eq!(mode(&f.path), 0o600);
        assert_eq!(mode(&f.state_path()), 0o600);
        assert_eq!(mode(&with_suffix(&f.path, ".lock")), 0o600);
        assert_eq!(mode(&with_suffix(&f.path, ".state.swap")), 0o600);
        let mut names: Vec<_> = fs::read_dir(dir_b)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(
            names,
            [
                "erp.json",
                "erp.json.lock",
                "erp.json.state.json",
                "erp.json.state.swap"
            ],
            "no temp file is left behind"
        );
    }

    #[tokio::test]
    async fn a_writing_operation_tightens_loose_permissions() {
        let f = Fixture::new();
        f.rotate(1).await;
        let staged = f.stage(2).await;
        for path in [f.path.clone(), f.state_path()] {
            fs::set_permissions(&path, Permissions::from_mode(0o644)).unwrap();
        }

        f.store.load().await.unwrap();
        assert_eq!(mode(&f.path), 0o644, "load changes nothing on disk");

        // Even an operation with nothing to change fixes the modes.
        f.store.abandon_rotation(Uuid::new_v4()).await.unwrap();
        assert_eq!(mode(&f.path), 0o600);
        assert_eq!(mode(&f.state_path()), 0o600);

        // Both slots, whichever the next version goes to.
        let swap = f.slot_path(Slot::Second);
        fs::set_permissions(&swap, Permissions::from_mode(0o644)).unwrap();
        f.store.abandon_rotation(staged).await.unwrap();
        assert_eq!(mode(&f.state_path()), 0o600);
        assert_eq!(mode(&swap), 0o600);
    }

    /// (inode, length) of each slot.
    fn slot_files(f: &Fixture) -> Vec<(u64, u64)> {
        use std::os::unix::fs::MetadataExt;
        [Slot::First, Slot::Second]
            .map(|slot| {
                let metadata = fs::metadata(f.slot_path(slot)).unwrap();
                (metadata.ino(), metadata.len())
            })
            .to_vec()
    }

    #[tokio::test]
    async fn state_versions_alternate_between_two_slots_rewritten_in_place() {
        let f = Fixture::new();
        f.rotate(1).await;
        let files = slot_files(&f);
        for (_, length) in &files {
            assert_eq!(length % STATE_SLOT_STEP as u64, 0, "padded to whole blocks");
        }
        let mut sequences = Vec::new();
        for n in 2..=4 {
            f.rotate(n).await;
            f.store
                .mark_previous_revoked(token(Uuid::nil(), n - 1).id(), at(n))
                .await
                .unwrap();
            let staged = f.stage(n + 10).await;
            f.store.abandon_rotation(staged).await.unwrap();
            assert_eq!(slot_files(&f), files, "same inodes, same sizes");
            let mut pair: Vec<u64> = [Slot::First, Slot::Second]
                .map(|slot| {
                    let bytes = fs::read(f.slot_path(slot)).unwrap();
                    serde_json::from_slice::<Value>(&bytes).unwrap()["sequence"]
                        .as_u64()
                        .unwrap()
                })
                .to_vec();
            pair.sort_unstable();
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "the other slot keeps the version before"
            );
            sequences.push(pair[1]);
        }
        assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().id(), token(Uuid::nil(), 4).id());
        assert!(state.intent.is_none() && state.pending.is_none());
    }

    /// A crash in the middle of rewriting a slot can leave any mix of its old and new bytes.
    /// Every mix reads as the version before the write, or (when the mix holds all of the
    /// new version's text) the new one; none is an error.
    #[tokio::test]
    async fn a_torn_state_slot_reads_as_the_version_before_it() {
        let f = Fixture::new();
        f.rotate(1).await;
        let rotation_id = Uuid::new_v4();
        f.store.begin_rotation(&intent(rotation_id)).await.unwrap();
        let before = [Slot::First, Slot::Second].map(|slot| fs::read(f.slot_path(slot)).unwrap());
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        let after = [Slot::First, Slot::Second].map(|slot| fs::read(f.slot_path(slot)).unwrap());
        let written = (0..2).find(|&i| before[i] != after[i]).unwrap();
        let slot = [Slot::First, Slot::Second][written];
        let (old, new) = (&before[written], &after[written]);
        assert_eq!(old.len(), new.len());

        let mut tears = 0;
        // Every split in the header and the start of the state, then a sample.
        for split in (1..new.len()).filter(|split| *split < 256 || split % 17 == 0) {
            for torn in [
                [&new[..split], &old[split..]].concat(),
                [&old[..split], &new[split..]].concat(),
            ] {
                fs::write(f.slot_path(slot), &torn).unwrap();
                let state = f.store.load().await.unwrap();
                let whole_new = torn
                    .iter()
                    .zip(new.iter())
                    .all(|(a, b)| a == b || (a.is_ascii_whitespace() && b.is_ascii_whitespace()));
                assert_eq!(state.pending.is_some(), whole_new, "split at {split}");
                assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
                tears += usize::from(!whole_new);
            }
        }
        assert!(tears > 100, "only {tears} torn mixes were tried");

        // The next write goes into the torn slot, not over the version read.
        let mut torn = new.clone();
        torn[100] ^= 1;
        fs::write(f.slot_path(slot), &torn).unwrap();
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_eq!(
            fs::read(f.slot_path(slot.other())).unwrap(),
            before[1 - written]
        );
        assert!(f.store.load().await.unwrap().pending.is_some());
    }

    #[tokio::test]
    async fn a_legacy_state_file_is_read_and_the_next_version_goes_to_the_other_slot() {
        let f = Fixture::new();
        let (current, rotation_id) = (Uuid::new_v4(), Uuid::new_v4());
        f.store.import_current(&token(current, 1)).await.unwrap();
        let legacy = json!({
            "format": 1,
            "intent": intent(rotation_id),
            "pending": null,
            "previous": null,
        })
        .to_string();
        fs::write(f.state_path(), &legacy).unwrap();
        // A format-1 writer left the version before in the swap file: never read.
        fs::write(
            f.slot_path(Slot::Second),
            json!({"format": 1, "intent": intent(Uuid::new_v4()), "pending": null, "previous": null})
                .to_string(),
        )
        .unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_eq!(fs::read_to_string(f.state_path()).unwrap(), legacy);
        assert_eq!(
            f.state_json()["pending"]["token_id"],
            token(rotation_id, 2).id()
        );
        f.store.promote(rotation_id, at(9)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert_eq!(state.previous.unwrap().token.rotation_id(), current);
    }

    #[test]
    fn only_the_head_this_program_writes_is_probed_for_its_sequence() {
        let probe = |text: &str| probe_sequence(text.as_bytes());
        assert_eq!(
            probe(r#"{"format":3,"sequence":42,"crc32":1,"state":{}}"#),
            Some(42)
        );
        assert_eq!(
            probe(r#"{"format":2,"sequence":42,"sha256":"","state":{}}"#),
            None
        );
        assert_eq!(probe(r#"{"format": 3, "sequence": 42, "crc32": 1}"#), None);
        assert_eq!(probe(r#"{"format":3,"sequence":,"#), None);
        assert_eq!(probe(r#"{"format":3,"sequence":42"#), None);
        assert_eq!(
            probe(r#"{"format":3,"sequence":99999999999999999999,"#),
            None
        );
    }

    /// A slot of format 2 (SHA-256), as versions before format 3 wrote it.
    fn format_2_slot(sequence: u64, state: &Value) -> String {
        let state = state.to_string();
        let slot = format!(
            "{{\"format\":2,\"sequence\":{sequence},\"sha256\":\"{}\",\"state\":{state}}}",
            slot_sha256(sequence, state.as_bytes())
        );
        format!("{slot:<2047}\n")
    }

    #[tokio::test]
    async fn a_format_2_slot_is_read_and_the_next_version_goes_to_the_other_slot_in_format_3() {
        let f = Fixture::new();
        let (current, rotation_id) = (Uuid::new_v4(), Uuid::new_v4());
        f.store.import_current(&token(current, 1)).await.unwrap();
        let old = format_2_slot(
            7,
            &json!({"intent": intent(rotation_id), "pending": null, "previous": null}),
        );
        fs::write(f.state_path(), &old).unwrap();
        fs::write(f.slot_path(Slot::Second), "").unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, rotation_id);
        f.store.stage_pending(&token(rotation_id, 2)).await.unwrap();
        assert_eq!(fs::read_to_string(f.state_path()).unwrap(), old);
        let new: Value =
            serde_json::from_slice(&fs::read(f.slot_path(Slot::Second)).unwrap()).unwrap();
        assert_eq!(
            (new["format"].as_u64(), new["sequence"].as_u64()),
            (Some(3), Some(8))
        );
        assert!(
            new["crc32"].is_u64() && new.get("sha256").is_none(),
            "{new}"
        );
        assert_eq!(
            f.state_json()["pending"]["token_id"],
            token(rotation_id, 2).id()
        );

        // A format-2 slot whose sha256 does not match is torn, like a format-3 one whose
        // crc32 does not: the other slot is read.
        let damaged = old.replacen("\"sequence\":7", "\"sequence\":9", 1);
        fs::write(f.state_path(), &damaged).unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.pending.unwrap().id(), token(rotation_id, 2).id());
        fs::write(f.slot_path(Slot::Second), "").unwrap();
        let err = f.store.load().await.unwrap_err();
        assert!(
            err.to_string().contains("does not match its sha256"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn load_of_a_missing_store_is_empty_and_creates_nothing() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("not-yet");
        let store = FileStore::new(&FileStoreConfig {
            path: dir.join("erp.json"),
        });
        let state = store.load().await.unwrap();
        assert!(state.current.is_none() && state.intent.is_none());
        assert!(!dir.exists());
    }

    /// Runs rotation 1, stages rotation 2, then promotes it stopping after `writes` writes.
    async fn promote_interrupted(f: &Fixture, writes: usize) -> (Uuid, Uuid) {
        let first = f.rotate(1).await;
        let second = f.stage(2).await;
        promote(&mut f.store.files.clone(), second, at(500), writes).unwrap();
        (first, second)
    }

    #[tokio::test]
    async fn crash_after_promote_step_1_reads_as_not_yet_promoted() {
        let f = Fixture::new();
        let (first, second) = promote_interrupted(&f, 1).await;
        assert_eq!(
            f.state_json()["previous"]["token"]["token_id"],
            f.reader_json()["token_id"],
            "the simulated crash left step 1's state"
        );

        let state = f.store.load().await.unwrap();
        assert_previous_is_not_current(&state);
        assert_eq!(state.current.unwrap().rotation_id(), first);
        assert!(state.previous.is_none());
        assert_eq!(state.intent.unwrap().rotation_id, second);
        assert_eq!(state.pending.unwrap().rotation_id(), second);

        f.store.promote(second, at(600)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), second);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.rotation_id(), first);
        assert_eq!(previous.revoke_after, at(600));
        assert!(state.intent.is_none() && state.pending.is_none());
    }

    /// A memo carried through `promote`'s step 1 alone recalls what the files then parse to
    /// (debug builds check each recall against a parse), the not yet promoted state.
    #[tokio::test]
    async fn a_memo_through_an_interrupted_promote_recalls_what_the_files_say() {
        let f = Fixture::new();
        let first = f.rotate(1).await;
        let second = f.stage(2).await;
        let mut files = f.store.files.clone();
        files.remember = true;
        files.read(Looseness::Tighten).unwrap();
        assert!(files.memo.is_some());
        promote(&mut files, second, at(500), 1).unwrap();

        let snapshot = files.read(Looseness::Warn).unwrap();
        assert_eq!(snapshot.current.unwrap().rotation_id(), first);
        assert!(
            snapshot.state.previous.is_none(),
            "step 1 alone is not a promotion"
        );
        assert_eq!(snapshot.state.pending.unwrap().rotation_id(), second);

        promote(&mut files, second, at(500), usize::MAX).unwrap();
        let snapshot = files.read(Looseness::Warn).unwrap();
        assert_eq!(snapshot.current.unwrap().rotation_id(), second);
        assert_eq!(snapshot.state.previous.unwrap().token.rotation_id(), first);
        assert!(snapshot.state.pending.is_none() && snapshot.state.intent.is_none());
        assert!(snapshot.dirty, "step 3 is left to the next write");
    }

    #[tokio::test]
    async fn a_held_store_keeps_its_memo_until_the_last_release() {
        let f = Fixture::new();
        f.store.hold();
        f.store.hold();
        f.rotate(1).await;
        f.rotate(2).await;
        assert!(f.store.memo().is_some(), "kept between steps while held");
        f.store.release();
        assert!(f.store.memo().is_some(), "holds nest");
        f.store.release();
        assert!(f.store.memo().is_none(), "gone with the last release");
        let previous = f.store.load().await.unwrap().previous.unwrap();
        f.store
            .mark_previous_revoked(previous.token.id(), at(5))
            .await
            .unwrap();
        f.store.load().await.unwrap();
        assert!(f.store.memo().is_none(), "nothing is kept without a hold");
    }

    #[tokio::test]
    async fn a_held_store_sees_what_another_process_wrote_between_its_steps() {
        let f = Fixture::new();
        f.rotate(1).await;
        f.store.hold();
        let mine = Uuid::new_v4();
        f.store.begin_rotation(&intent(mine)).await.unwrap();
        assert!(f.store.memo().is_some());

        // Another process abandons this rotation and begins its own between two steps.
        let other = f.other_store();
        other.abandon_rotation(mine).await.unwrap();
        let theirs = Uuid::new_v4();
        other.begin_rotation(&intent(theirs)).await.unwrap();
        assert_conflict(f.store.stage_pending(&token(mine, 2)).await);
        let state = f.store.load().await.unwrap();
        assert_eq!(state.intent.unwrap().rotation_id, theirs);

        // And promotes it: the reader file changes, and so does what this store reads.
        other.stage_pending(&token(theirs, 3)).await.unwrap();
        other.promote(theirs, at(3)).await.unwrap();
        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), theirs);
        assert!(state.intent.is_none() && state.pending.is_none());
        f.store.release();
    }

    #[tokio::test]
    async fn crash_after_promote_step_1_can_be_abandoned_instead() {
        let f = Fixture::new();
        let (first, second) = promote_interrupted(&f, 1).await;
        f.store.abandon_rotation(second).await.unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), first);
        assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());
        assert_eq!(f.state_json()["previous"], Value::Null);
    }

    #[tokio::test]
    async fn crash_after_promote_step_2_reads_as_promoted_and_the_next_write_finishes_it() {
        let f = Fixture::new();
        let (first, second) = promote_interrupted(&f, 2).await;
        assert_eq!(
            f.state_json()["pending"]["rotation_id"],
            second.to_string(),
            "the simulated crash left step 2's state"
        );

        let state = f.store.load().await.unwrap();
        assert_previous_is_not_current(&state);
        assert_eq!(state.current.unwrap().rotation_id(), second);
        let previous = state.previous.unwrap();
        assert_eq!(previous.token.rotation_id(), first);
        assert_eq!(previous.revoke_after, at(500));
        assert!(state.intent.is_none() && state.pending.is_none());
        assert!(f.state_json()["pending"].is_object(), "load only reads");

        // A repeated promote is a no-op that persists the repair.
        f.store.promote(second, at(600)).await.unwrap();
        let on_disk = f.state_json();
        assert_eq!(on_disk["pending"], Value::Null);
        assert_eq!(on_disk["intent"], Value::Null);
        assert_eq!(on_disk["previous"]["revoke_after"], "2023-11-14T22:21:40Z");
    }

    #[tokio::test]
    async fn crash_during_a_first_promote_is_repaired_by_load() {
        let f = Fixture::new();
        let rotation_id = f.stage(1).await;
        // With no old current there is no step 1: the first write is the reader file.
        promote(&mut f.store.files.clone(), rotation_id, at(500), 1).unwrap();

        let state = f.store.load().await.unwrap();
        assert_eq!(state.current.unwrap().rotation_id(), rotation_id);
        assert!(state.previous.is_none() && state.intent.is_none() && state.pending.is_none());
        f.store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap();
        assert_eq!(f.state_json()["pending"], Value::Null);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_begin_rotation_lets_exactly_one_win() {
        const RACERS: usize = 8;
        let f = Fixture::new();
        let start = Arc::new(tokio::sync::Barrier::new(RACERS));
        let racers: Vec<_> = (0..RACERS)
            .map(|_| {
                let store = f.other_store();
                let start = Arc::clone(&start);
                let intent = intent(Uuid::new_v4());
                tokio::spawn(async move {
                    start.wait().await;
                    (intent.clone(), store.begin_rotation(&intent).await)
                })
            })
            .collect();

        let mut winners = Vec::new();
        for racer in racers {
            let (intent, result) = racer.await.unwrap();
            match result {
                Ok(()) => winners.push(intent),
                Err(err) => assert!(err.is_conflict(), "{err}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(
            f.store.load().await.unwrap().intent.as_ref(),
            winners.first()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn racing_import_lets_exactly_one_win() {
        const RACERS: i64 = 8;
        let f = Fixture::new();
        let start = Arc::new(tokio::sync::Barrier::new(RACERS as usize));
        let racers: Vec<_> = (0..RACERS)
            .map(|n| {
                let store = f.other_store();
                let start = Arc::clone(&start);
                tokio::spawn(async move {
                    let record = token(Uuid::new_v4(), n);
                    start.wait().await;
                    (record.id().to_string(), store.import_current(&record).await)
                })
            })
            .collect();

        let mut winners = Vec::new();
        for racer in racers {
            let (token_id, result) = racer.await.unwrap();
            match result {
                Ok(()) => winners.push(token_id),
                Err(err) => assert!(err.is_conflict(), "{err}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(f.reader_json()["token_id"], winners[0]);
    }

    #[tokio::test]
    async fn corrupt_state_file_is_invalid_and_the_error_quotes_no_value() {
        let f = Fixture::new();
        let planted = format!("ts-{SECRET_MARK}-planted");
        let corrupt = format!(r#"{{"format": "{planted}", "intent": null}}"#);
        fs::write(f.state_path(), &corrupt).unwrap();
        let naive = serde_json::from_str::<FormatOnly>(&corrupt).unwrap_err();
        assert!(
            naive.to_string().contains(&planted),
            "serde_json would have quoted the planted value"
        );

        let err = f.store.load().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        assert_eq!(err.operation, "load");
        let message = err.to_string();
        assert!(
            message.contains(&f.state_path().display().to_string()),
            "{message}"
        );
        assert!(message.contains("line 1"), "{message}");
        assert!(!message.contains(SECRET_MARK), "{message}");

        // Writing operations refuse too, and leave the file for a person to look at.
        let err = f
            .store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        assert_eq!(fs::read_to_string(f.state_path()).unwrap(), corrupt);
    }

    #[tokio::test]
    async fn corrupt_reader_file_is_invalid_and_names_the_file() {
        let f = Fixture::new();
        fs::write(
            &f.path,
            format!(r#"{{"token_secret": "ts-{SECRET_MARK}-x", "#),
        )
        .unwrap();
        let err = f.store.load().await.unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Invalid);
        let message = err.to_string();
        assert!(message.contains(&f.path.display().to_string()), "{message}");
        assert!(!message.contains(SECRET_MARK), "{message}");
    }

    #[tokio::test]
    async fn a_state_slot_of_an_unknown_format_is_invalid_even_beside_a_good_one() {
        let f = Fixture::new();
        f.rotate(1).await;
        f.stage(2).await;
        for slot in [Slot::First, Slot::Second] {
            let good = fs::read(f.slot_path(slot)).unwrap();
            fs::write(f.slot_path(slot), r#"{"format": 4}"#).unwrap();
            let err = f.store.load().await.unwrap_err();
            assert_eq!(err.kind, StoreErrorKind::Invalid);
            assert!(err.detail.contains("format 4"), "{err}");
            assert!(
                err.detail
                    .contains(&f.slot_path(slot).display().to_string()),
                "{err}"
            );
            fs::write(f.slot_path(slot), good).unwrap();
        }
        assert!(f.store.load().await.unwrap().pending.is_some());
    }

    #[tokio::test]
    async fn errors_name_the_store_and_the_operation() {
        let f = Fixture::new();
        assert_eq!(f.store.describe(), format!("file {}", f.path.display()));
        f.store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap();
        let err = f
            .store
            .begin_rotation(&intent(Uuid::new_v4()))
            .await
            .unwrap_err();
        assert_eq!(err.store, f.store.describe());
        assert_eq!(err.operation, "begin_rotation");

        // A parent "directory" that is a file: the file system's own words reach the message.
        let blocker = f.path.with_file_name("blocker");
        fs::write(&blocker, "").unwrap();
        let store = FileStore::new(&FileStoreConfig {
            path: blocker.join("erp.json"),
        });
        let err = store
            .import_current(&token(Uuid::new_v4(), 1))
            .await
            .unwrap_err();
        assert_eq!(err.kind, StoreErrorKind::Failed);
        assert!(err.detail.contains(&blocker.display().to_string()), "{err}");
    }

    #[test]
    fn refused_permissions_are_denied_and_a_full_disk_is_temporary() {
        let kind = |errno| io_error_kind(&io::Error::from_raw_os_error(errno));
        const EPERM: i32 = 1;
        const ENOENT: i32 = 2;
        const EACCES: i32 = 13;
        const ENOSPC: i32 = 28;
        assert_eq!(kind(EACCES), StoreErrorKind::Denied);
        assert_eq!(kind(EPERM), StoreErrorKind::Denied);
        assert_eq!(kind(ENOSPC), StoreErrorKind::Unavailable);
        assert_eq!(kind(ENOENT), StoreErrorKind::Failed);
    }

    #[tokio::test]
    async fn debug_output_never_shows_secrets() {
        let f = Fixture::new();
        f.rotate(1).await;
        f.rotate(2).await;
        f.stage(3).await;
        assert!(
            f.state_json().to_string().contains(SECRET_MARK),
            "the state does hold secrets, so the check below can fail"
        );

        let state = f.store.load().await.unwrap();
        let snapshot = f.store.files.clone().read(Looseness::Warn).unwrap();
        for debug in [
            format!("{state:?}"),
            format!("{snapshot:?}"),
            format!("{:?}", f.store),
        ] {
            assert!(!debug.contains(SECRET_MARK), "{debug}");
        }
    }
}

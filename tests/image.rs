//! The OCI image built here without pulling anything (`scripts/build-image.sh`: buildah, FROM
//! scratch, the binary, its libraries, CA certificates, user 65532), run with buildah's chroot
//! isolation: `--version`, and the demo, whose files belong to the non-root user.
//! Needs buildah and crun (`scripts/setup/buildah.sh`) and root, as buildah's storage does.

use std::path::Path;
use std::process::{Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_netsuite-token-rotator");

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn buildah(args: &[&str]) -> Output {
    Command::new("buildah")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run buildah ({e}): run scripts/setup/buildah.sh (it installs buildah and crun)")
        })
}

fn ok(args: &[&str]) -> String {
    let out = buildah(args);
    assert!(out.status.success(), "buildah {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Removes the test's container and image whatever happens.
struct Cleanup {
    container: Option<String>,
    tag: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(container) = &self.container {
            let _ = buildah(&["rm", container]);
        }
        let _ = buildah(&["rmi", "--force", &self.tag]);
    }
}

#[test]
fn the_image_runs_the_binary_and_the_demo_as_user_65532() {
    let tag = format!(
        "localhost/netsuite-token-rotator-test:{}",
        std::process::id()
    );
    let mut cleanup = Cleanup {
        container: None,
        tag: tag.clone(),
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/build-image.sh");
    let built = Command::new("bash")
        .arg(&script)
        .args(["--binary", BIN, "--tag", &tag])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(built.status.success(), "build-image.sh: {}", text(&built));

    let config = ok(&[
        "inspect",
        "--format",
        "{{.OCIv1.Config.User}}|{{.OCIv1.Config.Entrypoint}}|{{.OCIv1.Config.WorkingDir}}",
        &tag,
    ]);
    assert_eq!(
        config,
        "65532:65532|[/usr/bin/netsuite-token-rotator]|/var/lib/netsuite-token-rotator"
    );

    let container = ok(&["from", &tag]);
    cleanup.container = Some(container.clone());
    let run = |args: &[&str]| {
        let mut all = vec!["run", "--isolation", "chroot", &container, "--"];
        all.push("/usr/bin/netsuite-token-rotator");
        all.extend(args);
        buildah(&all)
    };
    let version = run(&["--version"]);
    assert!(version.status.success(), "{}", text(&version));
    assert_eq!(
        String::from_utf8_lossy(&version.stdout).trim(),
        format!("netsuite-token-rotator {}", env!("CARGO_PKG_VERSION"))
    );

    let demo = run(&["demo", "--rotations", "1", "--interval", "1"]);
    assert!(demo.status.success(), "{}", text(&demo));
    assert!(
        text(&demo).contains("one live token, in the store"),
        "{}",
        text(&demo)
    );

    // The demo wrote its store as the image's user, in the user's home (the working directory).
    let root = ok(&["mount", &container]);
    let store =
        Path::new(&root).join("var/lib/netsuite-token-rotator/demo-data/demo-integration.json");
    let meta = std::fs::metadata(&store).unwrap_or_else(|e| panic!("{}: {e}", store.display()));
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid()), (65532, 65532));
    ok(&["umount", &container]);
}

//! Links the shipped binaries with packed relative relocations (DT_RELR) where the C library
//! can load them (glibc 2.36 and later): the relocation table the loader reads at every start
//! shrinks from about 1.6 MB to a few KB, and so does the resident memory it cost the idle
//! daemon (docs/performance.md). Elsewhere, and when cross-compiling, nothing changes: a
//! binary with DT_RELR does not start on an older glibc.
//!
//! Release builds of the daemon also lay out the functions a rotation and the daemon's start-up
//! run (listed in `linker/hot-functions.txt`) next to each other at the start of `.text`. The
//! kernel maps a binary's code 64 KiB around each page fault, and with the default order the
//! code a rotation runs was spread over nearly all of `.text`, so nearly all of it was resident
//! (5.5 of 6.5 MB at opt-level "z"); laid out together, 2.3 to 2.6 MiB of the 11.6 MB that
//! opt-level 2 makes is (docs/performance.md, changes 19 and 22). The order
//! changes where code is, never what it does; names the list has that the binary lacks (code
//! changed since the list was made) are skipped, and so are functions the list lacks: they
//! just land after the listed ones. It needs rust-lld (`--symbol-ordering-file`), rustc's
//! default linker on x86_64 Linux since 1.90; with another linker nothing changes.

use std::path::Path;
use std::process::Command;

/// The ordering file, made by `scripts/gen-hot-functions.sh`.
const HOT_FUNCTIONS: &str = "linker/hot-functions.txt";

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed={HOT_FUNCTIONS}");
    println!("cargo::rerun-if-env-changed=RUSTC_LINKER");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if host_glibc().is_some_and(|(major, minor)| (major, minor) >= (2, 36)) {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    if std::env::var("PROFILE").as_deref() == Ok("release") && links_with_rust_lld(&target) {
        let list =
            Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default()).join(HOT_FUNCTIONS);
        if list.is_file() {
            println!(
                "cargo::rustc-link-arg-bin=netsuite-token-rotator=-Wl,--symbol-ordering-file={}",
                list.display()
            );
            println!(
                "cargo::rustc-link-arg-bin=netsuite-token-rotator=-Wl,--no-warn-symbol-ordering"
            );
        }
    }
}

/// Whether rustc links for `target` with its own lld: the x86_64 Linux target of rustc 1.90 and
/// later, with the toolchain's `gcc-ld/ld.lld` present (a distribution's rustc may leave it
/// out), unless a linker is chosen (`RUSTC_LINKER` from cargo's `linker` setting, or linker
/// flags in RUSTFLAGS).
fn links_with_rust_lld(target: &str) -> bool {
    if target != "x86_64-unknown-linux-gnu" || std::env::var_os("RUSTC_LINKER").is_some() {
        return false;
    }
    let flags = std::env::var("CARGO_ENCODED_RUSTFLAGS").unwrap_or_default();
    if ["linker", "fuse-ld", "link-self-contained"]
        .iter()
        .any(|flag| flags.contains(flag))
    {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let ask = |arg: &str| {
        Command::new(&rustc)
            .arg(arg)
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .map(|text| text.trim().to_string())
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let version = ask("--version").and_then(|text| {
        let mut parts = text.strip_prefix("rustc ")?.split('.');
        let major: u32 = parts.next()?.parse().ok()?;
        let minor: u32 = parts.next()?.parse().ok()?;
        Some((major, minor))
    });
    let lld = ask("--print=sysroot").map(|sysroot| {
        Path::new(&sysroot)
            .join("lib/rustlib")
            .join(target)
            .join("bin/gcc-ld/ld.lld")
    });
    version.is_some_and(|version| version >= (1, 90)) && lld.is_some_and(|lld| lld.is_file())
}

/// The build machine's glibc version, from `getconf GNU_LIBC_VERSION` ("glibc 2.36").
fn host_glibc() -> Option<(u32, u32)> {
    let output = Command::new("getconf")
        .arg("GNU_LIBC_VERSION")
        .output()
        .ok()?;
    let text = String::from_utf8(output.stdout).ok()?;
    let version = text.trim().strip_prefix("glibc ")?;
    let mut parts = version.split('.');
    let major = parts.next()?.parse().ok()?;
    let minor = parts.next()?.parse().ok()?;
    Some((major, minor))
}

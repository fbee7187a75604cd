//! Links the shipped binaries with packed relative relocations (DT_RELR) where the C library
//! can load them (glibc 2.36 and later): the relocation table the loader reads at every start
//! shrinks from about 1.6 MB to a few KB, and so does the resident memory it cost the idle
//! daemon (docs/performance.md). Elsewhere, and when cross-compiling, nothing changes: a
//! binary with DT_RELR does not start on an older glibc.

use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    let host = std::env::var("HOST").unwrap_or_default();
    if target != host || !target.ends_with("-linux-gnu") {
        return;
    }
    if host_glibc().is_some_and(|(major, minor)| (major, minor) >= (2, 36)) {
        println!("cargo::rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
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

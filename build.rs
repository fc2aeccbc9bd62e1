//! Tells the test suite what this machine can run, so a test that cannot run here is *ignored*
//! with its reason (and counted as skipped in `cargo test`'s summary) instead of passing silently.
//!
//! Each capability becomes a `cfg` (e.g. `scc_netns`) that tests use as
//! `#[cfg_attr(not(scc_netns), ignore = "needs root, iproute2 and nftables")]`.
//! `SCC_PORTS_REQUIRE_ROOT_TESTS=1` (set by CI) turns every capability on that a CI machine must
//! have, so a missing tool there fails the test instead of skipping it. Capabilities no Debian
//! package provides (`pwsh`, `terraform`) are only on where they are found.

use std::path::{Path, PathBuf};
use std::process::Command;

/// (cfg, what it needs): the programs that must all be on the PATH; `root` means euid 0.
const CAPABILITIES: &[(&str, &[&str], bool)] = &[
    // (cfg, programs, required in CI)
    ("scc_netns", &["root", "ip", "nft"], true),
    ("scc_nft", &["nft"], true),
    ("scc_iptables", &["root", "iptables-restore"], true),
    ("scc_ipset", &["root", "ipset"], true),
    (
        "scc_firewalld",
        &[
            "root",
            "firewall-offline-cmd",
            "firewall-cmd",
            "dbus-daemon",
        ],
        true,
    ),
    ("scc_python3", &["python3"], true),
    ("scc_gcc", &["gcc"], true),
    ("scc_ansible", &["ansible-playbook"], true),
    ("scc_chromium", &["chromium", "node"], true),
    ("scc_sshd", &["root", "sshd", "ssh"], true),
    ("scc_setpriv", &["root", "setpriv"], true),
    ("scc_nmap", &["nmap"], true),
    ("scc_pwsh", &["pwsh"], false),
    ("scc_terraform", &["terraform"], false),
];

fn on_path(program: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .any(|dir| is_executable(&dir.join(program)))
}

#[cfg(unix)]
fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(p: &Path) -> bool {
    p.is_file()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=SCC_PORTS_REQUIRE_ROOT_TESTS");
    println!("cargo::rerun-if-env-changed=SCC_PORTS_WINDOWS_EXE");
    println!("cargo::rerun-if-env-changed=SCC_PORTS_WINDOWS_SKIP");
    println!("cargo::rerun-if-env-changed=PATH");
    println!("cargo::rerun-if-env-changed=SCC_PORTS_ACLGEN");
    // Installing a package changes these directories' contents: look again then.
    for dir in ["/usr/bin", "/usr/sbin"] {
        if Path::new(dir).is_dir() {
            println!("cargo::rerun-if-changed={dir}");
        }
    }
    let required = std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() == Ok("1");
    let unix = std::env::var("CARGO_CFG_UNIX").is_ok();
    let root = unix && is_root();
    for &(cfg, needs, in_ci) in CAPABILITIES {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        let here = unix
            && needs
                .iter()
                .all(|n| if *n == "root" { root } else { on_path(n) });
        if here || (required && in_ci) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    // Python modules the tests import: (cfg, module, required in CI).
    for (cfg, module, in_ci) in [
        ("scc_py_jsonschema", "jsonschema", true),
        ("scc_py_hcl2", "hcl2", false),
    ] {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        // The PATH's python3 may be another build than Debian's, where its packages go.
        let here = unix
            && ["python3", "/usr/bin/python3"].iter().any(|py| {
                Command::new(py)
                    .args(["-c", &format!("import {module}")])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
        if here || (required && in_ci) {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
    // Aerleon's aclgen (CI's .ci/before.d/30-aerleon.sh installs it in a venv and names it).
    println!("cargo::rustc-check-cfg=cfg(scc_aerleon)");
    let aclgen = std::env::var_os("SCC_PORTS_ACLGEN").is_some_and(|p| Path::new(&p).is_file())
        || (unix && on_path("aclgen"));
    if aclgen || required {
        println!("cargo::rustc-cfg=scc_aerleon");
    }
    // The Windows build under Wine: CI's before-job builds the .exe and names it.
    println!("cargo::rustc-check-cfg=cfg(scc_wine)");
    let exe = std::env::var_os("SCC_PORTS_WINDOWS_EXE");
    // CI's Windows job says why it could not build the .exe (the target's standard library
    // could not be fetched): then these tests are skipped with that reason, not failed.
    let skip = std::env::var_os("SCC_PORTS_WINDOWS_SKIP").is_some();
    if exe.is_some_and(|e| Path::new(&e).is_file()) || (required && !skip) {
        println!("cargo::rustc-cfg=scc_wine");
    }
}

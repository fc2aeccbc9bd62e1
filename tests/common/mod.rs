//! Helpers shared by integration tests.
#![allow(dead_code)]

pub mod burst;
pub mod netns;

/// A small deterministic generator (xorshift64*): the kernel tests' policies, mutations and
/// samples are reproducible from their seed.
pub struct Rng(pub u64);

impl Rng {
    /// A generator seeded with `seed` (0, which xorshift never leaves, counts as 1).
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % (n as u64).max(1)) as usize
    }
}

/// Whether CI requires the tests that need root or a tool: they fail instead of skipping
/// (`.ci/run` sets `SCC_PORTS_REQUIRE_ROOT_TESTS=1`).
pub fn required() -> bool {
    std::env::var("SCC_PORTS_REQUIRE_ROOT_TESTS").as_deref() == Ok("1")
}

/// Runs the built `scc-ports` from the crate's root: (exit code, stdout, stderr).
pub fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(args)
        .output()
        .expect("run scc-ports");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The flows the lab deployment `lab` (a path from the crate root) plans through the firewall of
/// APP1 (whose addresses are `app1`), or with `network` through the network firewalls.
pub fn lab_flows(
    lab: &str,
    app1: &[std::net::Ipv4Addr],
    network: bool,
) -> Vec<scc_ports::flows::Flow> {
    let catalog = scc_ports::catalog::Catalog::embedded();
    let text = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(lab))
        .unwrap();
    let dep =
        scc_ports::deployment::parse(&scc_ports::diag::Source::new(lab, text.as_str()), &catalog)
            .expect("lab loads");
    let plan = scc_ports::plan::resolve(&dep, &catalog);
    let all = scc_ports::flows::flows(&dep, &catalog, &plan);
    let mode = if network {
        scc_ports::firewall::Mode::Network
    } else {
        scc_ports::firewall::Mode::Node {
            name: "APP1".into(),
            addresses: app1.iter().map(|a| std::net::IpAddr::V4(*a)).collect(),
        }
    };
    scc_ports::firewall::select(&dep, &all, &mode)
}

/// Aerleon's `aclgen`: `SCC_PORTS_ACLGEN` (CI's venv, .ci/before.d/30-aerleon.sh) or the PATH's.
pub fn aclgen() -> std::path::PathBuf {
    std::env::var_os("SCC_PORTS_ACLGEN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "aclgen".into())
}

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

/// Aerleon's `aclgen`: `SCC_PORTS_ACLGEN` (CI's venv, .ci/before.d/30-aerleon.sh) or the PATH's.
pub fn aclgen() -> std::path::PathBuf {
    std::env::var_os("SCC_PORTS_ACLGEN")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| "aclgen".into())
}

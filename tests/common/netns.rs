//! Network namespaces for end-to-end tests: created with unique names, linked by veth pairs,
//! firewalled with nftables, entered per thread, and always deleted (Drop), even on failure.
//!
//! Needs root, `ip` and `nft`. [`available`] says whether a test can run; without them it
//! explains and the test returns early, unless `SCC_PORTS_REQUIRE_ROOT_TESTS=1`, then it panics
//! (CI sets it, so a silently skipped suite cannot pass for a green one).

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn tool_exists(name: &str) -> bool {
    Command::new(name)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Whether namespace tests can run here; prints why not (or panics when they are required).
pub fn available(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let why = if !root {
        Some("not root".to_owned())
    } else if !tool_exists("ip") {
        Some("`ip` (iproute2) not found".to_owned())
    } else if !tool_exists("nft") {
        Some("`nft` (nftables) not found".to_owned())
    } else {
        None
    };
    match why {
        None => true,
        Some(why) => {
            if super::required() {
                panic!("{test}: namespace tests are required but cannot run: {why}");
            }
            eprintln!("skipping {test}: {why}");
            false
        }
    }
}

fn run(cmd: &mut Command) -> io::Result<()> {
    let out = cmd.stdin(Stdio::null()).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Deletes namespaces this helper made in test processes that are gone (killed mid-test).
fn sweep_stale() {
    let Ok(dir) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix("scc-").and_then(|r| r.split('-').next()) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(Command::new("ip").args(["netns", "del", &name]));
        }
    }
}

/// A network namespace named `scc-<pid>-<n>`, deleted on drop.
pub struct Netns {
    name: String,
}

impl Netns {
    pub fn new() -> io::Result<Netns> {
        sweep_stale();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let name = format!("scc-{}-{n}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        let ns = Netns { name };
        ns.ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// `ip -n NAME args...`
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// Runs `args` in this namespace (`ip netns exec`), `stdin` fed to it, and returns its
    /// stdout; panics with its stderr when it fails.
    pub fn exec(&self, args: &[&str], stdin: Option<&str>) -> String {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        {
            let mut input = child.stdin.take().expect("stdin");
            if let Some(text) = stdin {
                input.write_all(text.as_bytes()).expect("write stdin");
            }
        }
        let out = child.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{args:?} in {}: {}\n{}",
            self.name,
            String::from_utf8_lossy(&out.stderr),
            stdin.unwrap_or("")
        );
        String::from_utf8(out.stdout).expect("UTF-8")
    }

    /// Loads an nftables ruleset (text for `nft -f -`) in this namespace.
    /// Opens tcp PORT in the input chain of the rules scc-ports generated (`inet scc_ports`):
    /// a service the plan does not know about, for the checks that must find it.
    pub fn accept_tcp(&self, port: u16) {
        let port = port.to_string();
        self.exec(
            &[
                "nft",
                "add",
                "rule",
                "inet",
                "scc_ports",
                "input",
                "tcp",
                "dport",
                &port,
                "accept",
            ],
            None,
        );
    }

    pub fn nft(&self, ruleset: &str) -> io::Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        child
            .stdin
            .take()
            .expect("piped stdin")
            .write_all(ruleset.as_bytes())?;
        let out = child.wait_with_output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(io::Error::other(format!(
                "nft in {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
    }

    /// Moves the calling thread into this namespace (only this thread: net namespaces are
    /// per thread). Use on a thread of its own.
    pub fn enter_this_thread(&self) -> io::Result<()> {
        let f = File::open(format!("/run/netns/{}", self.name))?;
        // SAFETY: setns on an open namespace descriptor; affects only the calling thread.
        if unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Runs `f` on a new thread inside this namespace and returns its handle; sockets made
    /// there belong to the namespace.
    pub fn spawn<F, R>(&self, f: F) -> std::thread::JoinHandle<io::Result<R>>
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = File::open(path)?;
            // SAFETY: as in enter_this_thread.
            if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
    }

    /// Runs `f` inside this namespace and waits for it.
    pub fn run<F, R>(&self, f: F) -> R
    where
        F: FnOnce() -> R + Send + 'static,
        R: Send + 'static,
    {
        match self.spawn(f).join() {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => panic!("cannot enter namespace {}: {e}", self.name),
            Err(p) => std::panic::resume_unwind(p),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace also deletes the veth ends inside it.
        let _ = run(Command::new("ip").args(["netns", "del", &self.name]));
    }
}

/// Links two namespaces with a veth pair and gives each end an address (CIDR, e.g.
/// "10.231.0.1/24"), both up.
pub fn link(a: &Netns, a_cidr: &str, b: &Netns, b_cidr: &str) -> io::Result<()> {
    link_named(a, a_cidr, b, b_cidr).map(|_| ())
}

/// As [`link`], and returns the interface names (in `a`, in `b`), to add addresses or routes.
pub fn link_named(
    a: &Netns,
    a_cidr: &str,
    b: &Netns,
    b_cidr: &str,
) -> io::Result<(String, String)> {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    // Interface names are at most 15 bytes; unique per process and pair.
    let (va, vb) = (
        format!("va{}x{n}", std::process::id() % 100_000),
        format!("vb{}x{n}", std::process::id() % 100_000),
    );
    run(Command::new("ip").args([
        "link", "add", &va, "netns", &a.name, "type", "veth", "peer", "name", &vb, "netns", &b.name,
    ]))?;
    a.ip(&["addr", "add", a_cidr, "dev", &va])?;
    b.ip(&["addr", "add", b_cidr, "dev", &vb])?;
    a.ip(&["link", "set", &va, "up"])?;
    b.ip(&["link", "set", &vb, "up"])?;
    Ok((va, vb))
}

//! Writes and reads that must not lose or invent data: `-o` replaces a file atomically, a write
//! error is an error (exit 2) except a closed pipe, and inputs that are not regular files or are
//! too large are refused before they are read.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

use crate::support::{Test, example};

const OLD: &str = "# the rules that were loaded before\n";

/// `firewall -o FILE` with a file-size limit of 2 KiB (SIGXFSZ ignored, so the write fails with
/// EFBIG like on a full disk): the old file must survive whole.
#[test]
fn a_failed_write_leaves_the_old_file_intact() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("app1.sh");
    std::fs::write(&target, OLD).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scc-ports"));
    cmd.args([
        "firewall",
        &example("redundant"),
        "--target",
        "firewalld",
        "--node",
        "APP1",
        "-o",
    ])
    .arg(&target)
    .stdin(Stdio::null());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let limit = libc::rlimit {
                rlim_cur: 2048,
                rlim_max: 2048,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("cannot write"), "{stderr}");
    assert!(stderr.contains("unchanged"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), OLD);
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "a temporary file was left behind: {left:?}");
}

#[test]
fn a_successful_write_replaces_the_file_and_keeps_its_mode() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("app1.sh");
    std::fs::write(&target, OLD).unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o750)).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args([
            "firewall",
            &example("redundant"),
            "--target",
            "firewalld",
            "--node",
            "APP1",
            "-o",
        ])
        .arg(&target)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&target).unwrap();
    assert!(
        text.starts_with("#!") && text.contains("firewall-cmd"),
        "{text}"
    );
    let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o750);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn writing_into_a_missing_directory_is_a_located_error() {
    Test::new()
        .args([
            "firewall",
            "--target",
            "nftables",
            "--network",
            "-o",
            "no/such/dir/x.nft",
        ])
        .status(2)
        .stderr_has("cannot write no/such/dir/x.nft")
        .run();
}

fn run_with_stdout(
    stdout: Stdio,
    pre: Option<fn() -> std::io::Result<()>>,
) -> (Option<i32>, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scc-ports"));
    cmd.args(["catalog"]).stdout(stdout).stderr(Stdio::piped());
    if let Some(f) = pre {
        // SAFETY: the hooks below only call close(2).
        unsafe {
            cmd.pre_exec(f);
        }
    }
    let out = cmd.output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_full_disk_on_stdout_is_an_error() {
    let full = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let (code, stderr) = run_with_stdout(Stdio::from(full), None);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(
        stderr.contains("cannot write to standard output"),
        "{stderr}"
    );
}

#[test]
fn a_closed_stdout_is_an_error_not_a_silent_success() {
    let (code, stderr) = run_with_stdout(
        Stdio::null(),
        Some(|| {
            // SAFETY: closing descriptor 1 of the child, before exec.
            unsafe { libc::close(1) };
            Ok(())
        }),
    );
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("standard output"), "{stderr}");
}

#[test]
fn a_closed_pipe_stays_quiet() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(["plan", &example("large")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
}

#[test]
fn devices_and_fifos_are_refused_before_reading() {
    for args in [
        vec!["check", "/dev/zero"],
        vec!["--catalog", "/dev/zero", "catalog"],
        vec!["plan", "/dev/urandom"],
        vec!["plan", "."],
    ] {
        Test::new()
            .args(&args)
            .status(2)
            .stderr_has("error[E001]")
            .stderr_has("is not a regular file")
            .stderr_has("hint:")
            .run();
    }
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.toml");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: a valid C string and mode.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let started = std::time::Instant::now();
    Test::new()
        .args(["check", fifo.to_str().unwrap()])
        .status(2)
        .stderr_has("is not a regular file")
        .run();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

#[test]
fn a_huge_file_is_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.toml");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(scc_ports::cli::MAX_INPUT_BYTES + 1).unwrap(); // sparse: no disk used
    Test::new()
        .args(["check", big.to_str().unwrap()])
        .status(2)
        .stderr_has("error[E001]")
        .stderr_has("is too large")
        .stderr_has(":1:1")
        .run();
}

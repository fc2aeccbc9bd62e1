//! The shell commands the docs show (README.md, docs/*.md, ansible/README.md), run as a reader
//! would type them, and the output they show compared with what the commands print.
//!
//! Why a small runner and not `trycmd`: trycmd runs one program per `console` block line with
//! no shell, but our examples are `sh` blocks with redirects (`> acme.toml`), pipes, `&&`,
//! environment prefixes (`FIREWALLD_DIR=/tmp/fw sh …`) and trailing comments, and the output
//! they show is often an excerpt of a file the block wrote. So each command (a line, or lines
//! joined by a trailing `\`) runs with `sh -c` in a temp directory that holds what the docs
//! assume (the starter `acme.toml`, `examples/`, a secret, result files), with the built
//! `scc-ports` first on the PATH. Every command of one doc runs in the same directory, in order,
//! and (as root) inside one fresh network namespace, so `nft -f` and `iptables-restore` load
//! real rules into a kernel without touching the host's.
//!
//! The rules a doc follows:
//! - A `sh` block is run unless `<!-- not run: REASON -->` stands just above its fence. A
//!   `powershell` (or any other shell) block must carry that mark too.
//! - A command must exit 0, unless [`EXCEPTIONS`] names it with the exit it documents, or says
//!   why it is not run here (a listener that waits for probes, a file outside the repository).
//!   An exception that matches nothing fails the test, so the list cannot go stale.
//! - `<!-- output -->` above a plain fence: the block is the stdout of the command before it;
//!   `<!-- output: CMD -->`: the stdout of CMD (e.g. `cat app1.nft`). A line `…` stands for
//!   any number of lines, `…` inside a line for any text.
//! - A command whose program needs a tool or root runs where build.rs's cfg says the tool is
//!   there (CI has them all and sets `SCC_PORTS_REQUIRE_ROOT_TESTS=1`), else it is skipped and
//!   the skip printed.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

/// What a command the harness cannot run as shown gets instead.
#[derive(Clone, Copy, Debug)]
enum Instead {
    /// Not run here, for the reason given.
    Skip(&'static str),
    /// Run, and it must exit with this code, for the reason given (`audit` answers "no" with 1).
    Exit(i32, &'static str),
}

/// (doc, the start of the command, what instead): commands of unmarked blocks that are not run
/// as plain exit-0 commands. docs/audit.md is another helper's file today: its exceptions live
/// here until it carries its own marks.
const EXCEPTIONS: &[(&str, &str, Instead)] = &[
    (
        "README.md",
        "cargo install --path .",
        Instead::Skip("installs into the user's ~/.cargo/bin"),
    ),
    (
        "README.md",
        "scc-ports listen ",
        Instead::Skip("listens for probes until stopped"),
    ),
    (
        "README.md",
        "scc-ports probe ",
        Instead::Skip("needs listeners on the plan's addresses, run from the zone's hosts"),
    ),
    (
        "README.md",
        "scc-ports report acme.toml results/*.json",
        Instead::Skip(
            "needs result files of acme.toml's probes (docs/report.md runs it on the report goldens' system)",
        ),
    ),
    (
        "README.md",
        "scc-ports completions bash > /etc/",
        Instead::Skip("writes to the host's /etc"),
    ),
    (
        "README.md",
        "ansible-playbook ",
        Instead::Skip(
            "needs SSH hosts (tests/ansible.rs runs the playbook against sshd in namespaces)",
        ),
    ),
    (
        "README.md",
        "scc-ports audit acme.toml --node APP1 --ruleset app1.json                # an existing",
        Instead::Skip("the overview: app1.json is exported in the block below, which runs it"),
    ),
    (
        "README.md",
        "scc-ports audit acme.toml --node APP1 --ruleset app1.json",
        Instead::Exit(
            1,
            "the namespace's empty ruleset blocks nothing the plan needs: it admits all, but SSH and the rest are extra",
        ),
    ),
    (
        "README.md",
        "scc-ports firewall acme.toml --target nftables --node APP1 --diff app1.json",
        Instead::Exit(1, "--diff exits 1 when the ruleset needs changes"),
    ),
    (
        "docs/report.md",
        "scc-ports report acme.toml results/*.json",
        Instead::Exit(
            1,
            "the report goldens' results hold a failure of each kind: the verdict is no",
        ),
    ),
    (
        "docs/report.md",
        "scc-ports audit acme.toml --node APP1 --ruleset app1-now.rules",
        Instead::Exit(1, "the rule changed by hand: the audit is not exact"),
    ),
    (
        "docs/report.md",
        "scc-ports report acme.toml --audit APP1-now.json --compare before.json",
        Instead::Exit(1, "a flow broke and a port opened since before.json: worse"),
    ),
    (
        "README.md",
        "scc-ports firewall acme.toml --target windows --node APP1 --diff app1-windows.json",
        Instead::Skip("needs a Windows firewall export (docs/audit.md shows how to take one)"),
    ),
    (
        "docs/audit.md",
        "Get-NetFirewallRule",
        Instead::Skip("PowerShell on the Windows host whose rules are audited"),
    ),
    (
        "docs/audit.md",
        "{ echo \"default-zone: $(firewall-cmd --get-default-zone)\"",
        Instead::Skip("needs a running firewalld (tests/audit_firewalld.rs exports one's rules)"),
    ),
    (
        "docs/audit.md",
        "scc-ports audit acme.toml --network --ruleset edge-asa.cfg [--firewall EDGE]",
        Instead::Skip(
            "a synopsis ([--firewall EDGE] optional) over an appliance's configuration (tests/appliance.rs audits real ones)",
        ),
    ),
    (
        "docs/firewall.md",
        "sh app1-firewalld.sh",
        Instead::Skip("needs a running firewalld: as root on APP1"),
    ),
    (
        "docs/firewall.md",
        "ZONE=internal sh app1-firewalld.sh",
        Instead::Skip("needs a running firewalld: as root on APP1"),
    ),
    (
        "docs/firewall.md",
        "scc-ports audit acme.toml --node APP1 --ruleset sys",
        Instead::Exit(
            1,
            "the zone's own ssh is open beyond the plan, as the text says",
        ),
    ),
    (
        "docs/firewall.md",
        "terraform ",
        Instead::Skip("needs terraform and an AWS account"),
    ),
    (
        "ansible/README.md",
        "ansible-playbook ",
        Instead::Skip(
            "needs SSH hosts (tests/ansible.rs runs the playbook against sshd in namespaces)",
        ),
    ),
];

/// Programs a command may start with that need a capability of build.rs: (program, whether
/// this machine has it).
fn capable(program: &str) -> Result<(), &'static str> {
    let (have, why) = match program {
        "nft" => (cfg!(scc_netns), "needs root and nft (a network namespace)"),
        "iptables-restore" => (
            cfg!(all(scc_netns, scc_iptables)),
            "needs root and iptables",
        ),
        "firewall-offline-cmd" | "FIREWALLD_DIR=$PWD/fw" => {
            (cfg!(scc_firewalld), "needs firewalld's offline tools")
        }
        "aclgen" => (cfg!(scc_aerleon), "needs Aerleon's aclgen"),
        _ => (true, ""),
    };
    if have { Ok(()) } else { Err(why) }
}

const NOT_RUN: &str = "<!-- not run:";
const OUTPUT: &str = "<!-- output";

#[derive(Debug)]
enum Block {
    /// (line number, command) of a runnable block.
    Run(Vec<(usize, String)>),
    /// An output block: (line, the command that prints it or None for the previous one, text).
    Output(usize, Option<String>, String),
    /// (line, first command) of a shell block the harness cannot run (PowerShell) and that
    /// carries no mark: an exception must say why.
    Foreign(usize, String),
}

/// The blocks of one doc the harness acts on.
fn blocks(doc: &str, text: &str) -> Vec<Block> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(info) = lines[i].strip_prefix("```") else {
            i += 1;
            continue;
        };
        let start = i;
        let end = (i + 1..lines.len())
            .find(|&j| lines[j].starts_with("```"))
            .unwrap_or_else(|| panic!("{doc}:{}: unclosed fence", start + 1));
        let body = &lines[start + 1..end];
        let above = start.checked_sub(1).map_or("", |k| lines[k].trim());
        i = end + 1;
        if let Some(reason) = above.strip_prefix(NOT_RUN) {
            assert!(
                reason.trim_end_matches("-->").trim().len() > 3,
                "{doc}:{start}: a not-run mark says why"
            );
            continue;
        }
        if let Some(rest) = above.strip_prefix(OUTPUT) {
            let cmd = rest.trim_end_matches("-->").trim();
            let cmd = cmd.strip_prefix(':').map(|c| c.trim().to_owned());
            out.push(Block::Output(start + 1, cmd, body.join("\n")));
            continue;
        }
        match info.trim() {
            "sh" | "shell" | "bash" => {
                let mut cmds = Vec::new();
                let mut k = 0;
                while k < body.len() {
                    let first = k;
                    let mut cmd = String::new();
                    while body[k].ends_with('\\') && k + 1 < body.len() {
                        cmd.push_str(body[k].trim_end_matches('\\'));
                        k += 1;
                    }
                    cmd.push_str(body[k]);
                    k += 1;
                    let cmd = cmd.trim();
                    if !cmd.is_empty() && !cmd.starts_with('#') {
                        cmds.push((start + 2 + first, cmd.to_owned()));
                    }
                }
                out.push(Block::Run(cmds));
            }
            "powershell" | "ps1" | "console" | "bat" | "cmd" => out.push(Block::Foreign(
                start + 1,
                body.first().map_or("", |l| l.trim()).to_owned(),
            )),
            _ => {}
        }
    }
    out
}

/// Whether `actual` matches `expected` where a line `…` (indented or not) is any number of
/// lines and `…` in a line any text.
fn matches(expected: &[&str], actual: &[&str]) -> bool {
    match expected.split_first() {
        None => actual.is_empty(),
        Some((e, rest)) if e.trim() == "…" => {
            (0..=actual.len()).any(|n| matches(rest, &actual[n..]))
        }
        Some((e, rest)) => actual
            .split_first()
            .is_some_and(|(a, arest)| line_matches(e, a) && matches(rest, arest)),
    }
}

fn line_matches(expected: &str, actual: &str) -> bool {
    let mut parts = expected.split('…');
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = actual.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (n, part) in parts.iter().enumerate() {
        if n + 1 == parts.len() {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

struct Runner {
    dir: tempfile::TempDir,
    path: String,
    netns: Option<common::netns::Netns>,
}

impl Runner {
    fn new(doc: &str) -> Runner {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        copy_dir(&root.join("examples"), &d.join("examples"));
        copy_dir(&root.join("ansible"), &d.join("ansible"));
        // The reader's starter file (README: `init --template redundant > acme.toml`); the
        // report's pages use the report goldens' system and its result files.
        let acme = if doc == "docs/report.md" {
            std::fs::create_dir(d.join("results")).unwrap();
            for f in ["agents.json", "dc.json"] {
                std::fs::copy(root.join("tests/report").join(f), d.join("results").join(f))
                    .unwrap();
            }
            root.join("tests/report/system.toml")
        } else {
            root.join("examples/redundant.toml")
        };
        std::fs::copy(acme, d.join("acme.toml")).unwrap();
        std::fs::write(
            d.join("scc.secret"),
            "a shared secret of the docs' examples\n",
        )
        .unwrap();
        let bin = Path::new(env!("CARGO_BIN_EXE_scc-ports")).parent().unwrap();
        let aclgen = common::aclgen();
        let mut path = vec![bin.to_path_buf()];
        if let Some(p) = aclgen.parent().filter(|p| !p.as_os_str().is_empty()) {
            path.push(p.to_path_buf());
        }
        path.extend(std::env::split_paths(
            &std::env::var_os("PATH").unwrap_or_default(),
        ));
        path.extend([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")]);
        let path = std::env::join_paths(path).unwrap().into_string().unwrap();
        let netns = cfg!(scc_netns).then(|| common::netns::Netns::new().expect("netns"));
        Runner { dir, path, netns }
    }

    /// (exit code, stdout, stderr) of `cmd` run by `sh -c` in the doc's directory.
    fn sh(&self, cmd: &str) -> (i32, String, String) {
        let mut c = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns.name(), "sh", "-c", cmd]);
                c
            }
            None => {
                let mut c = Command::new("sh");
                c.args(["-c", cmd]);
                c
            }
        };
        let out = c
            .current_dir(self.dir.path())
            .env("PATH", &self.path)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run sh");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

fn docs() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut docs: Vec<String> = std::fs::read_dir(root.join("docs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".md"))
        .map(|n| format!("docs/{n}"))
        .collect();
    docs.sort();
    docs.insert(0, "README.md".into());
    docs.push("ansible/README.md".into());
    docs
}

#[test]
fn every_documented_command_runs_as_shown() {
    if cfg!(scc_netns) && !common::netns::available("every_documented_command_runs_as_shown") {
        return;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used = vec![false; EXCEPTIONS.len()];
    let mut failures = Vec::new();
    let mut ran = 0;
    for doc in docs() {
        let text = std::fs::read_to_string(root.join(&doc)).unwrap();
        let blocks = blocks(&doc, &text);
        if blocks.is_empty() {
            continue;
        }
        let runner = Runner::new(&doc);
        let mut last_stdout: Option<String> = None;
        let mut skipped = false;
        for block in blocks {
            match block {
                Block::Run(cmds) => {
                    skipped = false;
                    for (line, cmd) in cmds {
                        let found = EXCEPTIONS
                            .iter()
                            .position(|(d, start, _)| *d == doc && cmd.starts_with(start));
                        let expect = match found {
                            Some(n) => {
                                used[n] = true;
                                EXCEPTIONS[n].2
                            }
                            None => Instead::Exit(0, ""),
                        };
                        let (code, because) = match expect {
                            Instead::Exit(code, because) => (code, because),
                            Instead::Skip(why) => {
                                eprintln!("{doc}:{line}: not run ({why}): {cmd}");
                                continue;
                            }
                        };
                        let program = cmd.split_whitespace().next().unwrap_or("");
                        if let Err(why) = capable(program) {
                            // What follows in the block (and the output it shows) builds on it.
                            eprintln!(
                                "{doc}:{line}: skipped here ({why}), with the rest of its block: {cmd}"
                            );
                            skipped = true;
                            break;
                        }
                        let (got, stdout, stderr) = runner.sh(&cmd);
                        ran += 1;
                        if got != code || stderr.contains("ERROR") {
                            failures.push(format!(
                                "{doc}:{line}: `{cmd}` exited {got} (the docs expect {code}{because})\n{stderr}"
                            ));
                        }
                        last_stdout = Some(stdout);
                    }
                }
                Block::Foreign(line, cmd) => {
                    match EXCEPTIONS
                        .iter()
                        .position(|(d, start, _)| *d == doc && cmd.starts_with(start))
                    {
                        Some(n) if matches!(EXCEPTIONS[n].2, Instead::Skip(_)) => used[n] = true,
                        _ => failures.push(format!(
                            "{doc}:{line}: this block cannot run here: mark it `{NOT_RUN} REASON -->`"
                        )),
                    }
                }
                Block::Output(..) if skipped => {}
                Block::Output(line, cmd, expected) => {
                    let actual = match &cmd {
                        Some(cmd) => runner.sh(cmd).1,
                        None => last_stdout.clone().unwrap_or_else(|| {
                            panic!("{doc}:{line}: an output block with no command before it")
                        }),
                    };
                    let e: Vec<&str> = expected.lines().collect();
                    let a: Vec<&str> = actual.lines().collect();
                    ran += 1;
                    if !matches(&e, &a) {
                        failures.push(format!(
                            "{doc}:{line}: the output shown is not what {} prints:\n--- shown\n{expected}\n--- printed\n{actual}",
                            cmd.as_deref().unwrap_or("the command above")
                        ));
                    }
                }
            }
        }
    }
    for (n, (doc, start, _)) in EXCEPTIONS.iter().enumerate() {
        if !used[n] {
            failures.push(format!("exception for {doc} `{start}` matches no command"));
        }
    }
    eprintln!("{ran} documented commands and outputs checked");
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn elision_matches_lines_and_text() {
    assert!(matches(&["a", "…", "d"], &["a", "b", "c", "d"]));
    assert!(matches(&["a", "…"], &["a"]));
    assert!(!matches(&["a", "d"], &["a", "b", "d"]));
    assert!(matches(&["x … z"], &["x 1.2 s z"]));
    assert!(!matches(&["x … z"], &["x 1.2 s y"]));
    assert!(!matches(&["abc"], &["abcd"]));
}

/// `--help` says what the docs say (issue 21's rough edges, each a line that had drifted).
#[test]
fn help_says_what_the_docs_say() {
    let help = |cmd: &str| {
        let out = common::cli(&[cmd, "--help"]).1;
        out.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let firewall = help("firewall");
    let diff = &firewall[firewall.find("--diff").expect("--diff in firewall --help")..];
    assert!(
        diff.contains("windows"),
        "--diff works for Windows too: {diff}"
    );
    let audit = help("audit");
    for format in [
        "nft -j list ruleset",
        "nft list ruleset",
        "iptables-save",
        "firewall-cmd",
        "/etc/firewalld",
        "aws ec2",
    ] {
        assert!(audit.contains(format), "audit --help leaves out {format}");
    }
    let probe = help("probe");
    let live = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/live.md"))
        .unwrap();
    assert!(
        live.contains("× attempts × timeout + 10 s"),
        "docs/live.md's deadline formula"
    );
    assert!(
        probe.contains("x 4 attempts x timeout + 10 s"),
        "probe --help's deadline formula: {probe}"
    );
}

/// The docs cite only what a reader of the repository can open.
#[test]
fn docs_cite_only_the_repository() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for doc in docs() {
        let text = std::fs::read_to_string(root.join(&doc)).unwrap();
        assert!(
            !text.contains("DESIGN §"),
            "{doc} cites DESIGN, which is not in the repository"
        );
    }
}

/// A generated file's header says how to run it and what it drops, true for the plan at hand.
#[test]
fn generated_headers_are_true() {
    let (_, ps1, _) = common::cli(&[
        "firewall",
        "examples/redundant.toml",
        "--target",
        "windows",
        "--node",
        "APP1",
    ]);
    assert!(
        !ps1.contains("scc-firewall.ps1"),
        "the script may be saved under any name"
    );
    // SBC1 of two-offices admits SSH from the admins ([services.ssh]): not "SSH is dropped".
    let (code, sbc, err) = common::cli(&[
        "firewall",
        "examples/two-offices.toml",
        "--target",
        "iptables",
        "--node",
        "SBC1",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(sbc.contains("--dport 22"), "SBC1 admits SSH: {sbc}");
    assert!(
        !sbc.contains("(SSH, RDP) and other services are dropped"),
        "{sbc}"
    );
    let (_, app1, _) = common::cli(&[
        "firewall",
        "examples/redundant.toml",
        "--target",
        "iptables",
        "--node",
        "APP1",
    ]);
    assert!(
        app1.contains("(SSH, RDP) and other services are dropped"),
        "{app1}"
    );
}

/// The redundant template's comments name the warnings its own `check` gives, once each.
#[test]
fn the_redundant_template_explains_its_warnings() {
    let (_, _, err) = common::cli(&["check", "examples/redundant.toml"]);
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/redundant.toml"),
    )
    .unwrap();
    let head: String = template
        .lines()
        .take_while(|l| l.starts_with('#'))
        .collect();
    for line in err.lines().filter(|l| l.starts_with("warning[")) {
        let code = &line["warning[".len()..line.find(']').unwrap()];
        assert!(
            head.contains(code),
            "the template's head does not explain {line}"
        );
    }
    assert!(
        !head.contains("keep HTTPS on 443"),
        "check warns C102 for it"
    );
}

/// docs/windows.md's size bound holds for the .exe CI builds (release, .ci/before.d/10-windows.sh).
#[test]
#[cfg_attr(
    not(scc_wine),
    ignore = "needs the Windows build (SCC_PORTS_WINDOWS_EXE)"
)]
fn the_windows_exe_is_as_large_as_documented() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/windows.md"))
            .unwrap();
    let at = doc
        .find("Size of the release build: under ")
        .expect("the size line")
        + "Size of the release build: under ".len();
    let mb: u64 = doc[at..]
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .expect("a number of MB");
    let exe = std::env::var_os("SCC_PORTS_WINDOWS_EXE").expect("SCC_PORTS_WINDOWS_EXE");
    let size = std::fs::metadata(&exe).expect("the .exe").len();
    assert!(
        size < mb * 1_000_000,
        "{exe:?} is {size} bytes: docs/windows.md says under {mb} MB"
    );
}

//! ansible/verify.yml with local hosts on loopback: two nodes and two probers on one machine
//! (tests/ansible/system.toml, addresses 127.0.74-75.x), one planned port held by a stranger
//! process. The report must name exactly that failure and its fix, the playbook must exit
//! non-zero, and no listener may be left running.
//!
//! Needs `ansible-playbook` (ansible-core): without it the test explains and passes, unless
//! SCC_PORTS_REQUIRE_ROOT_TESTS=1 (CI), then it fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// What a playbook run over ssh into namespaces needs.
const SSH_PLAY: [&str; 4] = ["ansible-playbook", "/usr/sbin/sshd", "ssh", "ssh-keygen"];

/// Whether every tool is installed; a missing one skips the test, or fails it under
/// SCC_PORTS_REQUIRE_ROOT_TESTS=1.
fn tools_ready(tools: &[&str]) -> bool {
    for tool in tools {
        if !have(tool) {
            assert!(
                !required(),
                "{tool} is missing, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires this test"
            );
            eprintln!("skipped: {tool} is not installed");
            return false;
        }
    }
    true
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A local inventory: every host runs on this machine, each in its own work directory.
fn inventory(work: &Path) -> String {
    let host = |name: &str, var: &str, value: &str| {
        format!(
            "        {name}:\n          ansible_connection: local\n          ansible_python_interpreter: auto_silent\n          {var}: {value}\n          scc_remote_tmp: {}\n",
            work.join("remote").display()
        )
    };
    // Both zones send media to the agents' PCs: each prober also probes the sample PC.
    let to_pc = "          scc_probe_workstations: [pc-agents]\n";
    format!(
        "all:\n  children:\n    scc_nodes:\n      hosts:\n{}{}    scc_probers:\n      hosts:\n{}{}    scc_workstations:\n      hosts:\n{}",
        host("APP1", "scc_node", "APP1"),
        host("APP2", "scc_node", "APP2"),
        // One machine: the probers send from 127.0.0.1, so each says which address its zone
        // sees it as (probe's zone guard would refuse otherwise, rightly).
        host("prober-dc", "scc_zone", "dc") + "          scc_source: 127.0.74.200\n" + to_pc,
        host("prober-agents", "scc_zone", "agents")
            + "          scc_source: 127.0.75.200\n"
            + to_pc,
        // The sample agent PC: its listener on one loopback address of the agents' network.
        host("pc-agents", "scc_workstation_zone", "agents")
            + "          scc_bind: 127.0.75.50\n          scc_workstation_address: 127.0.75.50\n",
    )
}

#[cfg_attr(not(scc_ansible), ignore = "needs ansible-playbook (ansible-core)")]
#[test]
fn local_playbook_names_the_held_port_and_leaves_nothing_running() {
    if !tools_ready(&["ansible-playbook"]) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path();
    std::fs::create_dir(work.join("remote")).unwrap();
    std::fs::write(work.join("inventory.yml"), inventory(work)).unwrap();
    std::fs::write(
        work.join("secret"),
        "ansible-test-secret-0123456789abcdef\n",
    )
    .unwrap();
    let results = work.join("results");
    // The stranger: holds APP2's HAC port before the listeners start.
    let stranger = std::net::TcpListener::bind("127.0.74.12:21012").expect("bind the stranger");
    let started = Instant::now();
    let out = Command::new("ansible-playbook")
        .arg("-i")
        .arg(work.join("inventory.yml"))
        .arg(root().join("ansible/verify.yml"))
        .arg("-e")
        .arg(format!(
            "scc_deployment={}",
            root().join("tests/ansible/system.toml").display()
        ))
        .arg("-e")
        .arg(format!("scc_secret_file={}", work.join("secret").display()))
        .arg("-e")
        .arg(format!("scc_results={}", results.display()))
        .arg("-e")
        .arg(format!("scc_binary={}", env!("CARGO_BIN_EXE_scc-ports")))
        .env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_HOME", work.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", work.join("ansible-tmp"))
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0")
        .output()
        .expect("run ansible-playbook");
    let elapsed = started.elapsed();
    let log = String::from_utf8_lossy(&out.stdout);
    eprintln!("playbook run: {:.1} s", elapsed.as_secs_f64());
    drop(stranger);
    assert_ne!(out.status.code(), Some(0), "the playbook must fail:\n{log}");
    // Flows first: the held port is the one failed flow; the PC's 56 ports are verified.
    assert!(
        log.contains("1 failed, 0 untested (ports: 1 of 61 not verified: 1 open)"),
        "{log}"
    );

    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("report.json")).unwrap())
            .unwrap();
    assert_eq!(report["summary"]["planned"], 61, "{report:#}");
    assert_eq!(report["summary"]["verified"], 60, "{report:#}");
    let failures = report["failures"].as_array().unwrap();
    assert_eq!(failures.len(), 1, "{report:#}");
    let f = &failures[0];
    assert_eq!(
        (
            f["zone"].as_str(),
            f["node"].as_str(),
            f["address"].as_str(),
            f["ports"].as_str(),
            f["status"].as_str()
        ),
        (
            Some("dc"),
            Some("APP2"),
            Some("127.0.74.12"),
            Some("21012"),
            Some("open")
        )
    );
    assert!(
        f["cause"]
            .as_str()
            .unwrap()
            .contains("another process holds the port")
    );
    assert!(
        f["action"]
            .as_str()
            .unwrap()
            .contains("ss -ltnup 'sport = :21012'")
    );

    let junit = std::fs::read_to_string(results.join("report.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 1, "{junit}");
    assert!(junit.contains("127.0.74.12 tcp/21012 server-port (APP2)"));
    let html = std::fs::read_to_string(results.join("report.html")).unwrap();
    assert!(html.contains("hac.server-port tcp 21012 to 127.0.74.12 on APP2"));
    assert!(
        html.contains("PCs of agents"),
        "the PC's flows in the HTML matrix"
    );
    for zone in [
        "dc-prober-dc.json",
        "agents-prober-agents.json",
        "dc-prober-dc-pcs.json",
        "agents-prober-agents-pcs.json",
    ] {
        assert!(results.join(zone).is_file(), "{zone} fetched");
    }

    // Nothing left behind: no listener of ours, no work directory (the secret with it).
    let left = running_from(&work.join("remote"));
    assert!(left.is_empty(), "listeners left running: {left:?}");
    let ss = Command::new("ss").args(["-Htlnu"]).output().unwrap();
    let ss = String::from_utf8_lossy(&ss.stdout);
    assert!(
        !ss.contains("127.0.74.") && !ss.contains("127.0.75."),
        "sockets left: {ss}"
    );
    assert_eq!(
        entries(&work.join("remote")),
        Vec::<String>::new(),
        "cleaned"
    );
    // The listeners' summaries: stopped by SIGINT, not killed.
    let log2 = std::fs::read_to_string(results.join("listen-APP2.log")).unwrap();
    assert!(log2.contains("cannot bind 127.0.74.12 tcp 21012 (hac.server-port)"));
    assert!(log2.contains("answered "), "{log2}");
}

mod common;

use common::netns::{self, Netns};
use common::required;

/// Processes the namespace test started (sshd per host): killed and reaped on drop, by their pid.
struct Children(Vec<std::process::Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("run");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An sshd inside `ns` on `address`, accepting the test's key for root, with its own host key.
fn sshd(ns: &Netns, address: &str, dir: &Path, name: &str) -> std::process::Child {
    let config = dir.join(format!("sshd-{name}.conf"));
    std::fs::write(
        &config,
        format!(
            "ListenAddress {address}\nPort 22\nHostKey {dir}/hostkey\nPidFile {dir}/sshd-{name}.pid\n\
             AuthorizedKeysFile {dir}/authorized_keys\nPermitRootLogin prohibit-password\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             Subsystem sftp internal-sftp\nLogLevel ERROR\n",
            dir = dir.display()
        ),
    )
    .unwrap();
    Command::new("ip")
        .args([
            "netns",
            "exec",
            ns.name(),
            "/usr/sbin/sshd",
            "-D",
            "-e",
            "-f",
        ])
        .arg(&config)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        // The readiness checks close without a handshake; sshd's complaints go to a file.
        .stderr(std::fs::File::create(dir.join(format!("sshd-{name}.log"))).unwrap())
        .spawn()
        .expect("start sshd")
}

/// SSH for the hosts (name, address, namespace): one key for root (`dir/id`), one host key, an
/// sshd per host on its own address, each answering from `controller` (bounded wait).
fn ssh_hosts(controller: &Netns, hosts: &[(&str, &str, &Netns)], dir: &Path) -> Children {
    std::fs::create_dir_all("/run/sshd").unwrap();
    for key in ["id", "hostkey"] {
        sh(Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(dir.join(key)));
    }
    std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
    let mut children = Children(Vec::new());
    for (name, address, ns) in hosts {
        children.0.push(sshd(ns, address, dir, name));
    }
    for (name, address, _) in hosts {
        let addr: std::net::SocketAddr = format!("{address}:22").parse().unwrap();
        let up = controller.run(move || {
            (0..100).any(|_| {
                let ok = std::net::TcpStream::connect_timeout(
                    &addr,
                    std::time::Duration::from_millis(100),
                )
                .is_ok();
                if !ok {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                ok
            })
        });
        assert!(up, "sshd of {name} did not start");
    }
    children
}

/// The end-to-end test: real SSH hosts in network namespaces (two servers, three client
/// zones, the dc zone probed from a server), a router with the generated `--network` rules minus
/// one, and one port held by another process. The report names exactly those two failures with
/// their fixes, the playbook exits non-zero, nothing is left running.
#[cfg_attr(
    not(all(scc_ansible, scc_netns, scc_sshd)),
    ignore = "needs ansible-playbook, sshd and root (network namespaces)"
)]
#[test]
fn namespace_playbook_over_ssh_names_the_missing_rule_and_the_held_port() {
    if !netns::available("namespace_playbook_over_ssh") || !tools_ready(&SSH_PLAY) {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let deployment = root().join("tests/ansible/netns.toml");
    let bin = env!("CARGO_BIN_EXE_scc-ports");

    // Router and hosts.
    let r = Netns::new().unwrap();
    let hosts: Vec<(&str, &str, &str, Netns)> = [
        ("S1", "10.71.1.11", "10.71.1.1"),
        ("S2", "10.71.5.12", "10.71.5.1"),
        ("A", "10.71.2.10", "10.71.2.1"),
        ("C", "10.71.3.10", "10.71.3.1"),
        ("M", "10.71.4.10", "10.71.4.1"),
        // The sample agent PC (scc_workstations), probed from S2 (the media unit VOICE's node),
        // A and C: every zone that sends it media.
        ("P", "10.71.6.50", "10.71.6.1"),
    ]
    .into_iter()
    .map(|(n, a, gw)| (n, a, gw, Netns::new().unwrap()))
    .collect();
    for (name, address, gateway, ns) in &hosts {
        let (_, inner) =
            netns::link_named(&r, &format!("{gateway}/24"), ns, &format!("{address}/24")).unwrap();
        ns.ip(&["route", "add", "default", "via", gateway]).unwrap();
        // The units' virtual IPs: CORE on S1, VOICE on S2 (their active instances).
        match *name {
            "S1" => ns
                .ip(&["addr", "add", "10.71.1.100/24", "dev", &inner])
                .unwrap(),
            "S2" => {
                ns.ip(&["addr", "add", "10.71.5.101/24", "dev", &inner])
                    .unwrap();
                // Media leaves from the media unit's address, as it does from MRS.
                ns.ip(&[
                    "route",
                    "add",
                    "10.71.6.0/24",
                    "via",
                    gateway,
                    "src",
                    "10.71.5.101",
                ])
                .unwrap();
            }
            _ => {}
        }
    }
    // The agent PC's own policy, as generated; and a counter of what reaches its media ports
    // from the media unit's address.
    let pc = &hosts.iter().find(|h| h.0 == "P").unwrap().3;
    let ws_rules = Command::new(bin)
        .args(["firewall"])
        .arg(&deployment)
        .args(["--target", "nftables", "--workstations"])
        .output()
        .unwrap();
    let ws_rules = String::from_utf8(ws_rules.stdout).unwrap();
    // sshd must stay reachable from the controller (the router): the generated policy is
    // default-drop and admits only the Contact Center's flows (docs/firewall.md).
    let ws_rules = ws_rules.replace(
        "iif \"lo\" accept",
        "iif \"lo\" accept\n\t\tip saddr 10.71.6.1 tcp dport 22 accept",
    );
    pc.nft(&ws_rules).unwrap();
    pc.nft(
        "table inet scc_test {\n chain c {\n  type filter hook input priority -10; policy accept;\n  \
         ip saddr 10.71.5.101 udp dport 5004-5031 counter\n }\n}\n",
    )
    .unwrap();
    sh(Command::new("ip").args([
        "netns",
        "exec",
        r.name(),
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
    ]));
    // The generated network rules, minus one: agents may not reach the connection server.
    let rules = Command::new(bin)
        .args(["firewall"])
        .arg(&deployment)
        .args(["--target", "nftables", "--network"])
        .output()
        .unwrap();
    let rules = String::from_utf8(rules.stdout).unwrap();
    // The rule is a set element now; a set left without elements loses its `elements` block
    // (nft refuses an empty one).
    let mut kept: Vec<&str> = rules
        .lines()
        .filter(|l| !l.contains("comment \"connection-server.client-port\""))
        .collect();
    assert_eq!(
        kept.len() + 1,
        rules.lines().count(),
        "exactly one rule removed"
    );
    if let Some(i) = (0..kept.len().saturating_sub(1))
        .find(|&i| kept[i].trim() == "elements = {" && kept[i + 1].trim() == "}")
    {
        kept.drain(i..=i + 1);
    }
    // The zones dc and agents each span two of the router's links. Our `--network` policy holds
    // only the flows between zones (a flow inside one zone crosses no firewall between zones):
    // traffic within one zone is the site's own rule, added to the forward chain here.
    let within = [
        "\t\tip saddr { 10.71.1.0/24, 10.71.5.0/24 } ip daddr { 10.71.1.0/24, 10.71.5.0/24 } accept",
        "\t\tip saddr { 10.71.2.0/24, 10.71.6.0/24 } ip daddr { 10.71.2.0/24, 10.71.6.0/24 } accept",
    ];
    let at = kept
        .iter()
        .position(|l| l.trim() == "ct state invalid drop")
        .expect("the forward chain's invalid-state rule");
    kept.splice(at + 1..at + 1, within);
    r.nft(&(kept.join("\n") + "\n")).unwrap();

    let children = ssh_hosts(
        &r,
        &hosts
            .iter()
            .map(|(n, a, _, ns)| (*n, *a, ns))
            .collect::<Vec<_>>(),
        dir,
    );

    // The stranger: holds S2's HAC port inside S2 before the listeners start.
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let (held_tx, held_rx) = std::sync::mpsc::channel::<()>();
    let s2 = &hosts[1].3;
    let stranger = s2.spawn(move || {
        let l = std::net::TcpListener::bind("10.71.5.12:21012").unwrap();
        held_tx.send(()).unwrap();
        let _ = stop_rx.recv();
        drop(l);
    });
    held_rx.recv().unwrap();

    let remote = dir.join("remote");
    std::fs::create_dir(&remote).unwrap();
    let host = |h: &str, address: &str, var: &str, value: &str| {
        format!(
            "        {h}:\n          ansible_host: {address}\n          {var}: {value}\n          scc_remote_tmp: {}\n",
            remote.display()
        )
    };
    let to_pc = "          scc_probe_workstations: [P]\n";
    let inventory = format!(
        "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {key}\n    ansible_python_interpreter: /usr/bin/python3\n  children:\n    scc_nodes:\n      hosts:\n{}{}    scc_probers:\n      hosts:\n{}{}{}{}    scc_workstations:\n      hosts:\n{}",
        host("S1", "10.71.1.11", "scc_node", "S1"),
        host("S2", "10.71.5.12", "scc_node", "S2"),
        host("S2", "10.71.5.12", "scc_zone", "dc") + to_pc,
        host("A", "10.71.2.10", "scc_zone", "agents") + to_pc,
        host("C", "10.71.3.10", "scc_zone", "carrier") + to_pc,
        host("M", "10.71.4.10", "scc_zone", "admins"),
        host("P", "10.71.6.50", "scc_workstation_zone", "agents"),
        key = dir.join("id").display()
    );
    std::fs::write(dir.join("inventory.yml"), inventory).unwrap();
    std::fs::write(dir.join("secret"), "netns-test-secret-0123456789abcdef\n").unwrap();
    let results = dir.join("results");
    let started = Instant::now();
    let out = ssh_playbook(&r, dir, &deployment, &results, &[])
        .output()
        .expect("run ansible-playbook");
    let elapsed = started.elapsed();
    eprintln!(
        "namespace playbook run (6 SSH hosts, 4 zones, an agent PC): {:.1} s",
        elapsed.as_secs_f64()
    );
    close_masters(&r, dir);
    let _ = stop_tx.send(());
    let _ = stranger.join();
    let log = String::from_utf8_lossy(&out.stdout);
    assert_ne!(out.status.code(), Some(0), "the playbook must fail:\n{log}");

    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("report.json"))
            .unwrap_or_else(|e| panic!("no report ({e}):\n{log}")),
    )
    .unwrap();
    let failures = report["failures"].as_array().unwrap();
    let summary: Vec<String> = failures
        .iter()
        .map(|f| {
            format!(
                "{} {} {} {} {}",
                f["zone"].as_str().unwrap(),
                f["address"].as_str().unwrap(),
                f["transport"].as_str().unwrap(),
                f["ports"].as_str().unwrap(),
                f["status"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            "dc 10.71.5.12 tcp 21012 open",
            "agents 10.71.1.100 tcp 21002 filtered"
        ],
        "{log}"
    );
    let filtered = &failures[1];
    let hops: Vec<(&str, &str)> = filtered["hops"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["firewall"].as_str().unwrap(), h["rule"].as_str().unwrap()))
        .collect();
    let network = hops
        .iter()
        .find(|(f, _)| *f == "network firewall between zones agents and dc")
        .expect("the network hop");
    assert_eq!(
        network.1,
        "nft 'add rule inet scc_ports forward ip saddr { 10.71.2.0/24, 10.71.6.0/24 } ip daddr { 10.71.1.100 } tcp dport { 21002 } accept comment \"connection-server.client-port\"'\n"
    );
    assert!(
        failures[0]["action"]
            .as_str()
            .unwrap()
            .contains("sport = :21012")
    );
    assert!(report["summary"]["untested"] == 0, "every zone probed");
    // The agent PC's media ports, from each zone that sends it media: all verified, and what
    // came from the servers came from the media unit's address.
    let to_pc: Vec<&serde_json::Value> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["address"] == "10.71.6.50")
        .collect();
    assert_eq!(to_pc.len(), 3 * 28, "dc, agents and carrier to the PC");
    assert!(
        to_pc
            .iter()
            .all(|r| r["status"] == "verified" && r["node"] == "PCs of agents"),
        "{to_pc:?}"
    );
    let counted = pc.exec(&["nft", "list", "table", "inet", "scc_test"], None);
    assert!(
        counted
            .split("packets ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse::<u64>().ok())
            .is_some_and(|n| n >= 28),
        "{counted}"
    );
    assert_eq!(report["flows"]["failed"], 2, "{:#}", report["flows"]);
    assert_eq!(report["flows"]["untested"], 0);
    let html = std::fs::read_to_string(results.join("report.html")).unwrap();
    assert!(
        html.contains("PCs of agents"),
        "the PC's flows in the HTML matrix"
    );
    assert!(results.join("dc-S2-pcs.json").is_file());
    let junit = std::fs::read_to_string(results.join("report.xml")).unwrap();
    assert_eq!(junit.matches("<failure").count(), 2);
    assert!(results.join("report.html").is_file());
    // Only the sshd daemons of this test (stopped below) may still name the directory; SSH
    // control masters told to exit may take a moment, listeners would not (bounded wait).
    let leftovers = || -> Vec<String> {
        let ours = Command::new("pgrep")
            .args(["-f", &dir.display().to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&ours.stdout)
            .lines()
            .filter(|pid| !children.0.iter().any(|c| c.id().to_string() == *pid))
            .filter_map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
                let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
                (!cmd.contains("sshd")).then(|| format!("{pid}: {cmd}"))
            })
            .collect()
    };
    let mut left = leftovers();
    for _ in 0..50 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = leftovers();
    }
    assert!(left.is_empty(), "processes left running: {left:?}");
    assert!(running_from(&remote).is_empty(), "listeners left");
    assert_eq!(entries(&remote), Vec::<String>::new(), "cleaned");
    drop(children);
}

/// `ansible-playbook` of verify.yml run inside `ns` over SSH (key `dir/id`, inventory
/// `dir/inventory.yml`, secret `dir/secret`), SSH control sockets in `dir/cp`.
fn ssh_playbook(
    ns: &Netns,
    dir: &Path,
    deployment: &Path,
    results: &Path,
    extra: &[&str],
) -> Command {
    let mut cmd = ansible_over_ssh(ns, dir, "ansible/verify.yml");
    cmd.arg("-e")
        .arg(format!("scc_deployment={}", deployment.display()))
        .arg("-e")
        .arg(format!("scc_secret_file={}", dir.join("secret").display()))
        .arg("-e")
        .arg(format!("scc_results={}", results.display()))
        .arg("-e")
        .arg(format!("scc_binary={}", env!("CARGO_BIN_EXE_scc-ports")));
    for e in extra {
        cmd.arg("-e").arg(e);
    }
    cmd
}

/// `ansible-playbook -i dir/inventory.yml PLAYBOOK` (a path from the crate root) run inside `ns`
/// over SSH, its state in `dir` and SSH control sockets in `dir/cp`.
fn ansible_over_ssh(ns: &Netns, dir: &Path, playbook: &str) -> Command {
    let cp = dir.join("cp");
    std::fs::create_dir_all(&cp).unwrap();
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns.name(), "ansible-playbook", "-i"])
        .arg(dir.join("inventory.yml"))
        .arg(root().join(playbook));
    cmd.env("ANSIBLE_NOCOLOR", "1")
        .env("ANSIBLE_HOST_KEY_CHECKING", "False")
        .env("ANSIBLE_PIPELINING", "True")
        .env("ANSIBLE_HOME", dir.join("ansible-home"))
        .env("ANSIBLE_LOCAL_TEMP", dir.join("ansible-tmp"))
        .env("ANSIBLE_SSH_CONTROL_PATH_DIR", &cp)
        .env(
            "ANSIBLE_SSH_ARGS",
            "-o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile=/dev/null -o StrictHostKeyChecking=no -o LogLevel=ERROR",
        )
        .env("ANSIBLE_RETRY_FILES_ENABLED", "0");
    cmd
}

/// Closes the SSH control masters ansible left in `dir/cp` (they would outlive the test by a
/// minute).
fn close_masters(ns: &Netns, dir: &Path) {
    if let Ok(socks) = std::fs::read_dir(dir.join("cp")) {
        for s in socks.flatten() {
            let _ = Command::new("ip")
                .args(["netns", "exec", ns.name(), "ssh", "-O", "exit", "-S"])
                .arg(s.path())
                .arg("x")
                .output();
        }
    }
}

/// The processes whose executable lies under `parent` (the kernel's exe link): our listeners.
fn running_from(parent: &Path) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(exe) = std::fs::read_link(e.path().join("exe")) {
            if exe.starts_with(parent) {
                out.push((pid, exe.display().to_string()));
            }
        }
    }
    out
}

/// The names in a directory, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Every file under `dir` (not following symlinks) whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return found;
    };
    for e in rd.flatten() {
        let Ok(t) = e.file_type() else { continue };
        if t.is_dir() {
            found.extend(files_containing(&e.path(), needle));
        } else if t.is_file() {
            if let Ok(bytes) = std::fs::read(e.path()) {
                if bytes.windows(needle.len()).any(|w| w == needle) {
                    found.push(e.path());
                }
            }
        }
    }
    found
}

/// One network namespace whose loopback holds the whole of tests/ansible/system.toml, and an
/// sshd on its 127.0.0.1: every inventory host is a real SSH host (as root), and no port of
/// these runs can clash with another test's.
struct SshLoopback {
    // Dropped first: the sshd dies before its namespace.
    _sshd: Children,
    ns: Netns,
    tmp: tempfile::TempDir,
}

impl SshLoopback {
    fn new(secret: &str) -> SshLoopback {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let ns = Netns::new().unwrap();
        std::fs::create_dir_all("/run/sshd").unwrap();
        for key in ["id", "hostkey"] {
            sh(Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key)));
        }
        std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys")).unwrap();
        let sshd = Children(vec![sshd(&ns, "127.0.0.1", dir, "lo")]);
        let up = ns.run(|| {
            (0..100).any(|_| {
                let ok = std::net::TcpStream::connect("127.0.0.1:22").is_ok();
                if !ok {
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                ok
            })
        });
        assert!(up, "sshd did not start");
        std::fs::write(dir.join("secret"), format!("{secret}\n")).unwrap();
        SshLoopback {
            _sshd: sshd,
            ns,
            tmp,
        }
    }

    fn dir(&self) -> &Path {
        self.tmp.path()
    }

    /// The inventory: system.toml's two nodes and two probers, all 127.0.0.1, working in `parent`;
    /// with `pc`, the agents' sample PC too (probed from both zones), so every planned flow can pass.
    fn inventory(&self, parent: &Path, pc: bool) {
        let host = |h: &str, var: &str, value: &str| {
            format!(
                "        {h}:\n          {var}: {value}\n          scc_remote_tmp: {}\n",
                parent.display()
            )
        };
        let (to_pc, pcs) = if pc {
            (
                "          scc_probe_workstations: [pc-agents]\n",
                format!(
                    "    scc_workstations:\n      hosts:\n{}          scc_bind: 127.0.75.50\n          scc_workstation_address: 127.0.75.50\n",
                    host("pc-agents", "scc_workstation_zone", "agents")
                ),
            )
        } else {
            ("", String::new())
        };
        let inventory = format!(
            "all:\n  vars:\n    ansible_host: 127.0.0.1\n    ansible_user: root\n    ansible_ssh_private_key_file: {key}\n    ansible_python_interpreter: /usr/bin/python3\n  children:\n    scc_nodes:\n      hosts:\n{}{}    scc_probers:\n      hosts:\n{}{}{pcs}",
            host("APP1", "scc_node", "APP1"),
            host("APP2", "scc_node", "APP2"),
            host("prober-dc", "scc_zone", "dc") + "          scc_source: 127.0.74.200\n" + to_pc,
            host("prober-agents", "scc_zone", "agents")
                + "          scc_source: 127.0.75.200\n"
                + to_pc,
            key = self.dir().join("id").display()
        );
        std::fs::write(self.dir().join("inventory.yml"), inventory).unwrap();
    }

    fn playbook(&self, extra: &[&str]) -> Command {
        ssh_playbook(
            &self.ns,
            self.dir(),
            &root().join("tests/ansible/system.toml"),
            &self.dir().join("results"),
            extra,
        )
    }
}

impl Drop for SshLoopback {
    fn drop(&mut self) {
        close_masters(&self.ns, self.tmp.path());
    }
}

/// Whether the SSH playbook tests can run here (else they explain, or fail under CI).
fn ssh_tests_available(test: &str) -> bool {
    if !netns::available(test) {
        return false;
    }
    for tool in [
        "ansible-playbook",
        "/usr/sbin/sshd",
        "ssh",
        "ssh-keygen",
        "setpriv",
    ] {
        if !have(tool) {
            assert!(
                !required(),
                "{tool} is missing, and SCC_PORTS_REQUIRE_ROOT_TESTS=1 requires {test}"
            );
            eprintln!("skipped: {tool} is not installed");
            return false;
        }
    }
    true
}

/// Runs `script` with `sh -c` as an unprivileged user (a uid of no account, no groups).
fn as_stranger(uid: u32, script: &str) -> Command {
    let mut cmd = Command::new("setpriv");
    cmd.arg(format!("--reuid={uid}"))
        .arg(format!("--regid={uid}"))
        .args(["--clear-groups", "--", "sh", "-c", script]);
    cmd
}

/// Issue 23, item 1: a local unprivileged user pre-creates the old fixed work directories (with
/// a `listen.pid` symlink to a root file), and during the whole run tries to swap the binary,
/// plant `listen.pid` symlinks and read the secret in every `scc-ports*` entry of the shared,
/// sticky parent (like /tmp). The run must pass without using any of it: no code of theirs runs,
/// the root file is intact, no secret reaches them, their own directories are left alone.
#[cfg_attr(
    not(all(scc_ansible, scc_netns, scc_sshd)),
    ignore = "needs ansible-playbook, sshd and root (network namespaces)"
)]
#[test]
fn a_local_user_cannot_hijack_the_work_directory() {
    if !ssh_tests_available("a_local_user_cannot_hijack_the_work_directory") {
        return;
    }
    let secret = "hijack-test-secret-0123456789abcdef";
    let t = SshLoopback::new(secret);
    let dir = t.dir();
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    mode(dir, 0o755);
    let shared = dir.join("shared");
    let loot = dir.join("loot");
    for (d, m) in [(&shared, 0o1777), (&loot, 0o777)] {
        std::fs::create_dir(d).unwrap();
        mode(d, m);
    }
    let victim = dir.join("victim");
    std::fs::write(&victim, "root's file\n").unwrap();
    let evil = loot.join("evil");
    std::fs::write(
        &evil,
        format!(
            "#!/bin/sh\nid -u >> {loot}/ran\ncat ./secret /dev/fd/3 >> {loot}/secrets 2>/dev/null\nexit 0\n",
            loot = loot.display()
        ),
    )
    .unwrap();
    mode(&evil, 0o755);
    t.inventory(&shared, true);
    let uid = 61_000 + std::process::id() % 1000;
    // The old fixed names, and one with the new prefix, each with a planted pid-file symlink.
    let names = [
        "scc-ports-APP1",
        "scc-ports-APP2",
        "scc-ports-prober-dc",
        "scc-ports-prober-agents",
        "scc-ports.attacker",
    ];
    let plant = names
        .iter()
        .map(|n| {
            format!(
                "mkdir -m 777 {d} && ln -s {v} {d}/listen.pid && cp {e} {d}/scc-ports",
                d = shared.join(n).display(),
                v = victim.display(),
                e = evil.display()
            )
        })
        .collect::<Vec<_>>()
        .join(" && ");
    sh(&mut as_stranger(uid, &plant));
    // The attacker's loop: bounded in time (4 minutes) and stopped by a file.
    let stop = dir.join("stop");
    let swapper = format!(
        "end=$(( $(date +%s) + 240 )); \
         while [ ! -e {stop} ] && [ $(date +%s) -lt $end ]; do \
           for d in {shared}/scc-ports*; do \
             [ -d \"$d\" ] || continue; \
             cp {evil} \"$d/.new\" 2>/dev/null && mv -f \"$d/.new\" \"$d/scc-ports\" 2>/dev/null && echo \"swapped $d\" >> {loot}/log; \
             ln -s {victim} \"$d/listen.pid\" 2>/dev/null && echo \"planted $d\" >> {loot}/log; \
             cat \"$d/secret\" >> {loot}/secrets 2>/dev/null; \
           done; sleep 0.05; \
         done",
        stop = stop.display(),
        shared = shared.display(),
        evil = evil.display(),
        loot = loot.display(),
        victim = victim.display()
    );
    let mut attacker = Children(vec![as_stranger(uid, &swapper).spawn().unwrap()]);

    let started = Instant::now();
    let out = t.playbook(&[]).output().expect("run ansible-playbook");
    eprintln!(
        "playbook beside an attacker: {:.1} s",
        started.elapsed().as_secs_f64()
    );
    std::fs::write(&stop, "").unwrap();
    for c in &mut attacker.0 {
        let _ = c.wait();
    }
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{log}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("results/report.json")).unwrap())
            .unwrap();
    assert_eq!(
        (
            &report["summary"]["planned"],
            &report["summary"]["verified"]
        ),
        // 5 server ports and the sample PC's 2 x 28 media ports.
        (&61.into(), &61.into()),
        "{report:#}"
    );
    // Each result records where it was sent from; the report checked it against the zone.
    assert_eq!(report["rejected"], serde_json::json!([]), "{report:#}");
    let dc: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("results/dc-prober-dc.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(dc["sources"], serde_json::json!(["127.0.74.200"]));
    assert!(
        !loot.join("ran").exists(),
        "the attacker's binary ran:\n{log}"
    );
    assert_eq!(
        std::fs::read_to_string(&victim).unwrap(),
        "root's file\n",
        "root wrote through a planted symlink"
    );
    assert!(
        files_containing(&loot, secret.as_bytes()).is_empty(),
        "the secret reached the attacker"
    );
    // The attacker's own directories: untouched (still theirs, nothing of ours in them).
    use std::os::unix::fs::MetadataExt;
    for n in names {
        let d = shared.join(n);
        assert_eq!(std::fs::symlink_metadata(&d).unwrap().uid(), uid, "{n}");
        assert_eq!(entries(&d), ["listen.pid", "scc-ports"], "{n}");
    }
    // Everything the attacker did landed in their own directories only.
    let did = std::fs::read_to_string(loot.join("log")).unwrap_or_default();
    assert!(
        did.lines()
            .all(|l| names.iter().any(|n| l.ends_with(&format!("/{n}")))),
        "{did}"
    );
    let mut left = entries(&shared);
    left.retain(|e| !names.contains(&e.as_str()));
    assert_eq!(left, Vec::<String>::new(), "our work directories removed");
    assert!(running_from(&shared).is_empty());
}

/// Waits (bounded) until `n` listeners under `parent` wrote their `ready:` line, except those in
/// `old` directories; returns the directories.
fn wait_ready(parent: &Path, n: usize, old: &[String]) -> Vec<String> {
    for _ in 0..1200 {
        let ready: Vec<String> = entries(parent)
            .into_iter()
            .filter(|d| !old.contains(d))
            .filter(|d| {
                std::fs::read_to_string(parent.join(d).join("listen.log"))
                    .is_ok_and(|l| l.lines().any(|l| l.starts_with("ready:")))
            })
            .collect();
        if ready.len() >= n {
            return ready;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    panic!("listeners not ready in 120 s: {:?}", entries(parent));
}

/// Issue 23, item 1: the playbook killed (SIGTERM) and interrupted (SIGINT) while its listeners
/// run leaves no secret on disk at once; the next run stops the listeners the killed run left
/// (it binds every port), and a listener left by an interrupted run ends by itself at its
/// `--duration`.
#[cfg_attr(
    not(all(scc_ansible, scc_netns, scc_sshd)),
    ignore = "needs ansible-playbook, sshd and root (network namespaces)"
)]
#[test]
fn an_interrupted_playbook_leaves_no_secret_and_no_listener() {
    if !ssh_tests_available("an_interrupted_playbook_leaves_no_secret_and_no_listener") {
        return;
    }
    let secret = "interrupt-test-secret-0123456789abcdef";
    let t = SshLoopback::new(secret);
    let parent = t.dir().join("remote");
    std::fs::create_dir(&parent).unwrap();
    t.inventory(&parent, false);
    let interrupt = |signal: i32, extra: &[&str], old: &[String]| -> Vec<String> {
        let mut child = t
            .playbook(extra)
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let ready = wait_ready(&parent, 2, old);
        // SAFETY: kill on the pid of our own child, not reaped yet.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        let status = child.wait().unwrap();
        assert!(!status.success(), "{status:?}");
        ready
    };
    let first = interrupt(libc::SIGTERM, &["scc_listen_duration=10m"], &[]);
    // The secret is on no disk of any host: the listeners read it from unlinked files.
    assert!(
        files_containing(&parent, secret.as_bytes()).is_empty(),
        "secret left after SIGTERM: {:?}",
        files_containing(&parent, secret.as_bytes())
    );
    let killed = running_from(&parent);
    assert_eq!(
        killed.len(),
        2,
        "the killed run's listeners run on: {killed:?}"
    );

    // The next run stops them (its own listeners bind every node address), then is interrupted.
    let second = interrupt(libc::SIGINT, &["scc_listen_duration=20s"], &first);
    for (pid, exe) in &killed {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "{pid} ({exe}) of the killed run still runs"
        );
    }
    for d in &first {
        assert!(!parent.join(d).exists(), "{d} of the killed run removed");
    }
    for d in &second {
        let log = std::fs::read_to_string(parent.join(d).join("listen.log")).unwrap();
        assert!(
            !log.contains("cannot bind 127.0.74.11") && !log.contains("cannot bind 127.0.74.12"),
            "{log}"
        );
    }
    assert!(
        files_containing(&parent, secret.as_bytes()).is_empty(),
        "secret left after SIGINT"
    );
    // The interrupted run's listeners end by themselves at --duration (20 s).
    let mut left = running_from(&parent);
    for _ in 0..400 {
        if left.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        left = running_from(&parent);
    }
    assert!(left.is_empty(), "listeners outlived --duration: {left:?}");
}

/// A server of the fleet audit test: its name (the deployment's node), address and router side.
const FLEET: [(&str, &str, &str); 3] = [
    ("N1", "10.72.1.11", "10.72.1.1"),
    ("N2", "10.72.2.11", "10.72.2.1"),
    ("N3", "10.72.3.11", "10.72.3.1"),
];

/// The generated ruleset of a fleet node for `target`.
fn fleet_rules(node: &str, target: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .args(["firewall"])
        .arg(root().join("tests/ansible/fleet.toml"))
        .args(["--target", target, "--node", node])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

/// Per audited firewall of a merged report: (firewall, exact, flows not admitted as
/// `component.port_id status`, the ports of its openings beyond the plan).
fn fleet_audits(report: &serde_json::Value) -> Vec<(String, bool, Vec<String>, Vec<String>)> {
    report["audit"]["audits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let flows = a["flows"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|f| f["status"] != "admitted")
                .map(|f| {
                    format!(
                        "{}.{} {}",
                        f["component"].as_str().unwrap(),
                        f["port_id"].as_str().unwrap(),
                        f["status"].as_str().unwrap()
                    )
                })
                .collect();
            let mut ports: Vec<String> = a["extra"]
                .as_array()
                .or(a["openings"].as_array())
                .map(|rows| {
                    rows.iter()
                        .map(|e| {
                            format!(
                                "{}/{}",
                                e["transport"].as_str().unwrap(),
                                e["ports"].as_str().unwrap()
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            ports.dedup();
            (
                a["firewall"].as_str().unwrap().to_string(),
                a["exact"].as_bool().unwrap(),
                flows,
                ports,
            )
        })
        .collect()
}

/// ansible/audit.yml over real SSH: three servers and a router, each a namespace with its own
/// sshd and its own live ruleset in the kernel (N1 the generated nftables rules, N2 the same less
/// HAC's admin port, N3 the generated iptables rules plus tcp 2222 open to anyone, the router the
/// generated `--network` rules), audited from a controller namespace.
/// The playbook detects each host's kind, fetches the rulesets, audits them and writes one merged
/// report that names exactly N2's missing rule and N3's extra opening; then N2 is fixed and N1
/// opens tcp 2223, and the second run's `--compare` against the first names exactly those.
#[cfg_attr(
    not(all(scc_ansible, scc_netns, scc_sshd)),
    ignore = "needs ansible-playbook, sshd and root (network namespaces)"
)]
#[test]
fn audit_playbook_over_ssh_names_the_missing_rule_the_extra_opening_and_the_drift() {
    if !netns::available("audit_playbook_over_ssh")
        || !tools_ready(&SSH_PLAY)
        || !tools_ready(&["iptables-restore"])
    {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let deployment = root().join("tests/ansible/fleet.toml");
    let r = Netns::new().unwrap();
    let hosts: Vec<(&str, &str, Netns)> = FLEET
        .iter()
        .map(|&(name, address, gateway)| {
            let ns = Netns::new().unwrap();
            netns::link_named(&r, &format!("{gateway}/24"), &ns, &format!("{address}/24")).unwrap();
            ns.ip(&["route", "add", "default", "via", gateway]).unwrap();
            (name, address, ns)
        })
        .collect();
    let (n1, n2, n3) = (&hosts[0].2, &hosts[1].2, &hosts[2].2);
    n1.nft(&fleet_rules("N1", "nftables")).unwrap();
    // N2: HAC's admin port is missing (its set element removed).
    let full = fleet_rules("N2", "nftables");
    let missing: String = full
        .lines()
        .filter(|l| !l.contains("comment \"hac.admin-port\""))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(missing.lines().count() + 1, full.lines().count());
    n2.nft(&missing).unwrap();
    // N3: iptables, with a port nobody planned.
    let extra = fleet_rules("N3", "iptables").replace(
        "\nCOMMIT",
        "\n-A SCC-PORTS -p tcp -m tcp --dport 2222 -j ACCEPT\nCOMMIT",
    );
    n3.exec(&["iptables-restore"], Some(&extra));
    assert!(n3.exec(&["iptables-save"], None).contains("--dport 2222"));

    // A router between zones (scc_network_firewalls) with the generated --network rules: exact.
    let router = Netns::new().unwrap();
    netns::link_named(&r, "10.72.9.1/24", &router, "10.72.9.2/24").unwrap();
    let network = Command::new(env!("CARGO_BIN_EXE_scc-ports"))
        .arg("firewall")
        .arg(&deployment)
        .args(["--target", "nftables", "--network"])
        .output()
        .unwrap();
    router
        .nft(&String::from_utf8(network.stdout).unwrap())
        .unwrap();

    let mut ssh: Vec<(&str, &str, &Netns)> = hosts.iter().map(|(n, a, ns)| (*n, *a, ns)).collect();
    ssh.push(("R", "10.72.9.2", &router));
    let children = ssh_hosts(&r, &ssh, dir);
    let inventory = format!(
        "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n    ansible_python_interpreter: /usr/bin/python3\n  children:\n    scc_nodes:\n      hosts:\n{}    scc_network_firewalls:\n      hosts:\n        R:\n          ansible_host: 10.72.9.2\n",
        dir.join("id").display(),
        FLEET
            .iter()
            .map(|(n, a, _)| format!(
                "        {n}:\n          ansible_host: {a}\n          scc_node: {n}\n"
            ))
            .collect::<String>()
    );
    std::fs::write(dir.join("inventory.yml"), inventory).unwrap();
    let run = |results: &Path, extra: &[String]| {
        let mut cmd = ansible_over_ssh(&r, dir, "ansible/audit.yml");
        cmd.arg("-e")
            .arg(format!("scc_deployment={}", deployment.display()))
            .arg("-e")
            .arg(format!("scc_results={}", results.display()))
            .arg("-e")
            .arg(format!("scc_binary={}", env!("CARGO_BIN_EXE_scc-ports")));
        for e in extra {
            cmd.arg("-e").arg(e);
        }
        let started = Instant::now();
        let out = cmd.output().expect("run ansible-playbook");
        eprintln!(
            "audit playbook run (3 SSH hosts): {:.1} s",
            started.elapsed().as_secs_f64()
        );
        let log = String::from_utf8_lossy(&out.stdout).into_owned();
        let report: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(results.join("audit-report.json"))
                .unwrap_or_else(|e| panic!("no report ({e}):\n{log}")),
        )
        .unwrap();
        (out.status.code(), log, report)
    };

    // First run: each host's kind detected, the two faults named, nothing else.
    let first = dir.join("first");
    let (code, log, report) = run(&first, &[]);
    assert_ne!(code, Some(0), "the playbook must fail:\n{log}");
    for f in ["N1.json", "N2.json", "N3.rules", "R.json"] {
        assert!(first.join("rulesets").join(f).is_file(), "{f}:\n{log}");
    }
    let mut audits = fleet_audits(&report);
    let router_audit = audits.pop().unwrap();
    assert!(
        router_audit.0.contains("network-R") && router_audit.1,
        "the router's audit: {router_audit:?}"
    );
    assert_eq!(
        audits,
        [
            ("host firewall of node N1".to_string(), true, vec![], vec![]),
            (
                "host firewall of node N2".to_string(),
                false,
                vec!["hac.admin-port blocked".to_string()],
                vec![]
            ),
            (
                "host firewall of node N3".to_string(),
                false,
                vec![],
                vec!["tcp/2222".to_string()]
            ),
        ],
        "{log}"
    );
    let html = std::fs::read_to_string(first.join("audit-report.html")).unwrap();
    assert!(html.contains("N2") && html.contains("2222"));
    let junit = std::fs::read_to_string(first.join("audit-report.xml")).unwrap();
    assert!(junit.contains("<failure"), "{junit}");
    // The SARIF of N3 points at the line of the fetched export that opens 2222.
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(first.join("audits/node-N3.sarif")).unwrap())
            .unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(!results.is_empty() && results.iter().all(|r| r["ruleId"] == "SCC-A004"));
    let line = results[0]["locations"][0]["physicalLocation"]["region"]["startLine"]
        .as_u64()
        .unwrap() as usize;
    let export = std::fs::read_to_string(first.join("rulesets/N3.rules")).unwrap();
    assert!(
        export
            .lines()
            .nth(line - 1)
            .unwrap()
            .contains("--dport 2222"),
        "line {line} of\n{export}"
    );

    // The change: N2 fixed, N1 opens tcp 2223; the second run compares with the first.
    n2.nft(&full).unwrap();
    n1.accept_tcp(2223);
    let second = dir.join("second");
    let (code, log, report) = run(
        &second,
        &[format!(
            "scc_compare={}",
            first.join("audit-report.json").display()
        )],
    );
    close_masters(&r, dir);
    assert_ne!(code, Some(0), "N1 and N3 are still not the plan:\n{log}");
    let drift = &report["drift"];
    let lines = |key: &str| -> Vec<String> {
        drift[key]
            .as_array()
            .unwrap_or_else(|| panic!("no drift.{key}: {drift:#}"))
            .iter()
            .map(|c| {
                format!(
                    "{}: {}",
                    c["place"].as_str().unwrap(),
                    c["what"].as_str().unwrap()
                )
            })
            .collect()
    };
    let (fixed, open) = (lines("newly_fixed"), lines("newly_open"));
    assert!(
        fixed.len() == 1
            && fixed[0].starts_with("host firewall of node N2")
            && fixed[0].contains("hac.admin-port"),
        "{drift:#}"
    );
    assert!(
        !open.is_empty()
            && open
                .iter()
                .all(|o| o.starts_with("host firewall of node N1") && o.contains("2223")),
        "{drift:#}"
    );
    assert!(
        lines("newly_failing").is_empty() && lines("closed").is_empty(),
        "{drift:#}"
    );
    assert_eq!(drift["worse"], true);
    // Nothing of the run is left on the hosts (the temporary exports are removed).
    let leftovers: Vec<PathBuf> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("scc-ports-ruleset."))
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    drop(children);
}

/// The playbook's Windows export is docs/audit.md's line (written, not run: no Windows host in
/// the tests), so the two cannot drift apart.
#[test]
fn the_windows_audit_task_runs_the_documented_export_line() {
    let doc = std::fs::read_to_string(root().join("docs/audit.md")).unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("Get-NetFirewallRule "))
        .expect("the export line");
    let export = line.split(" | Out-File").next().unwrap();
    let task =
        std::fs::read_to_string(root().join("ansible/tasks/windows/audit_collect.yml")).unwrap();
    assert!(
        task.contains(&format!("$rules = {export}")),
        "ansible/tasks/windows/audit_collect.yml runs another export than docs/audit.md"
    );
}

/// ansible/audit.yml with `scc_ruleset: firewalld`: the host's firewalld configuration (this
/// machine's /etc/firewalld and /usr/lib/firewalld, which the namespace host shares) is packed on
/// the host, unpacked on the controller in the root layout `audit --ruleset DIR` reads, and
/// audited from its XML files. A second host that cannot be reached fails the play by name.
#[cfg_attr(
    not(all(scc_ansible, scc_netns, scc_sshd, scc_firewalld)),
    ignore = "needs ansible-playbook, sshd, firewalld and root (network namespaces)"
)]
#[test]
fn audit_playbook_collects_a_firewalld_configuration() {
    if !netns::available("audit_playbook_firewalld") || !tools_ready(&SSH_PLAY) {
        return;
    }
    if !Path::new("/usr/lib/firewalld/zones").is_dir() {
        assert!(!required(), "firewalld's /usr/lib/firewalld is missing");
        eprintln!("skipped: firewalld is not installed");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = Netns::new().unwrap();
    let (name, address, gateway) = FLEET[0];
    let ns = Netns::new().unwrap();
    netns::link_named(&r, &format!("{gateway}/24"), &ns, &format!("{address}/24")).unwrap();
    let children = ssh_hosts(&r, &[(name, address, &ns)], dir);
    std::fs::write(
        dir.join("inventory.yml"),
        format!(
            "all:\n  vars:\n    ansible_user: root\n    ansible_ssh_private_key_file: {}\n    ansible_python_interpreter: /usr/bin/python3\n  children:\n    scc_nodes:\n      hosts:\n        {name}:\n          ansible_host: {address}\n          scc_node: {name}\n          scc_ruleset: firewalld\n        N2:\n          ansible_host: 10.72.1.99\n          scc_node: N2\n",
            dir.join("id").display()
        ),
    )
    .unwrap();
    let results = dir.join("results");
    let out = ansible_over_ssh(&r, dir, "ansible/audit.yml")
        .arg("-e")
        .arg(format!(
            "scc_deployment={}",
            root().join("tests/ansible/fleet.toml").display()
        ))
        .arg("-e")
        .arg(format!("scc_results={}", results.display()))
        .arg("-e")
        .arg(format!("scc_binary={}", env!("CARGO_BIN_EXE_scc-ports")))
        .output()
        .unwrap();
    close_masters(&r, dir);
    let log = String::from_utf8_lossy(&out.stdout);
    let unpacked = results.join("rulesets/N1-firewalld");
    assert!(
        unpacked.join("usr/lib/firewalld/zones").is_dir(),
        "not unpacked:\n{log}"
    );
    let audit: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(results.join("audits/node-N1.json"))
            .unwrap_or_else(|e| panic!("no audit ({e}):\n{log}")),
    )
    .unwrap();
    assert_eq!(audit["summary"]["format"], "firewalld-xml", "{log}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("audit-report.json")).unwrap())
            .unwrap();
    assert_eq!(
        report["audit"]["audits"][0]["firewall"],
        "host firewall of node N1"
    );
    // N2 (no host at its address) could not be collected: the report cannot name it, the play's
    // failure does.
    assert_eq!(report["audit"]["audits"].as_array().unwrap().len(), 1);
    assert!(!out.status.success());
    assert!(
        log.contains("not audited (the ruleset could not be collected): N2"),
        "{log}"
    );
    drop(children);
}

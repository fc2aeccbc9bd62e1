#!/usr/bin/env python3
"""Prober and listener against nmap, in one run: same ports, answers compared, time ratios.

Scenarios (DESIGN §6 / issue 5 targets):
  planned   loopback, one node's flows (20 TCP ports + both MRS areas, 1,602 UDP):
            ours (all verified) vs `nmap -sT -T5` + `nmap -sU -T5`; target ratio <= 0.5
  sweep     loopback, `--unexpected` (planned probes + all 65,535 TCP ports) vs
            `nmap -sT -T5 --min-rate 10000 -p-`; target ratio <= 0.5 (issue 22), same open ports
            (nmap's open ports minus the planned ones == our unexpected) in every run,
            prober peak RSS < 50 MB
  filtered  network namespaces, 100 TCP ports dropped by nftables in the server namespace
            (plus 20 allowed ones) vs `nmap -sT -T5`; target ratio <= 0.2 (needs root)

The driver is the ignored test `bench_driver` of tests/net.rs, built in release mode and run
directly (see its doc comment for the environment it takes). Only loopback and addresses inside
namespaces this script creates are ever probed.

Prerequisites: python3, cargo (it builds the driver), nmap; root, ip and nft for `filtered`.
Usage: bench/netbench.py [--reps N] [--sweep-reps N] [--udp-reps N] [--only planned,sweep,filtered]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SECRET = "netbench-secret"
TCP_PORTS = "5060,5061,8080,8443,20001-20016"  # 20 TCP ports of a node
UDP_PORTS = "8000-8400,9000-10200"  # both default MRS areas: 1,602 UDP ports


def expand(spec):
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def build():
    env = dict(os.environ)
    env.setdefault("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
    out = subprocess.run(
        ["cargo", "test", "--release", "--test", "net", "--no-run", "--message-format=json"],
        cwd=ROOT, env=env, check=True, stdout=subprocess.PIPE, text=True,
    ).stdout
    for line in out.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("executable") and \
                msg["target"]["name"] == "net":
            return msg["executable"]
    sys.exit("could not find the net test binary")


def driver_env(mode, addr, tcp, udp, **extra):
    env = dict(os.environ)
    env.update(NETBENCH_MODE=mode, NETBENCH_ADDR=addr, NETBENCH_TCP=tcp, NETBENCH_UDP=udp,
               NETBENCH_SECRET=SECRET)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Listener:
    """The listener driver in the background, until stopped."""

    def __init__(self, binary, addr, tcp, udp, netns=None, seconds=3600):
        cmd = ([ "ip", "netns", "exec", netns] if netns else []) + \
            [binary, "--ignored", "--exact", "bench_driver", "--nocapture"]
        self.proc = subprocess.Popen(
            cmd, env=driver_env("listen", addr, tcp, udp, NETBENCH_SECONDS=seconds),
            stdout=subprocess.PIPE, text=True)
        deadline = time.time() + 30
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            if line.startswith("failed:"):
                sys.exit("listener could not bind: " + line.strip())
            if line.startswith("ready:"):
                self.ready_ms = float(line.split()[1])
                return
        self.stop()
        sys.exit("listener never got ready")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def probe(binary, addr, tcp, udp, netns=None, **extra):
    cmd = (["ip", "netns", "exec", netns] if netns else []) + \
        [binary, "--ignored", "--exact", "bench_driver", "--nocapture"]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=driver_env("probe", addr, tcp, udp, **extra),
                         stdout=subprocess.PIPE, text=True, check=True).stdout
    wall = time.perf_counter() - t0
    for line in out.splitlines():
        if line.startswith("{"):
            return wall, json.loads(line)
    sys.exit("probe printed no result:\n" + out)


def nmap(args, netns=None):
    """Runs nmap with XML output; returns (seconds, {(proto, port): state}, extraports states)."""
    cmd = (["ip", "netns", "exec", netns] if netns else []) + ["nmap", "-n", "-oX", "-"] + args
    t0 = time.perf_counter()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         check=True).stdout
    wall = time.perf_counter() - t0
    root = ET.fromstring(out)
    ports, extra = {}, set()
    for host in root.iter("host"):
        for p in host.iter("port"):
            ports[(p.get("protocol"), int(p.get("portid")))] = p.find("state").get("state")
        for e in host.iter("extraports"):
            extra.add(e.get("state"))
    return wall, ports, extra


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def report(name, ours, theirs, target, notes, cmds):
    ratio = median(ours) / median(theirs)
    ok = "PASS" if ratio <= target else "FAIL"
    print(f"\n== {name}: ours {median(ours)*1e3:.1f} ms vs nmap {median(theirs)*1e3:.1f} ms "
          f"(medians of {len(ours)} / {len(theirs)} runs) -> ratio {ratio:.3f} "
          f"(target <= {target}) {ok}")
    for n in notes:
        print("   " + n)
    for c in cmds:
        print("   $ " + c)
    return ok == "PASS"


def scenario_planned(binary, reps, udp_reps):
    tcp_ports, udp_ports = expand(TCP_PORTS), expand(UDP_PORTS)
    ready = []
    for _ in range(reps):
        lis = Listener(binary, "127.0.0.1", TCP_PORTS, UDP_PORTS)
        ready.append(lis.ready_ms)
        lis.stop()
    lis = Listener(binary, "127.0.0.1", TCP_PORTS, UDP_PORTS)
    ours, theirs, tcp_only = [], [], []
    notes = [f"listener: {len(tcp_ports)} TCP + {len(udp_ports)} UDP ports bound and served "
             f"after {median(ready):.1f} ms (median of {len(ready)} starts)"]
    try:
        for _ in range(reps):
            wall, res = probe(binary, "127.0.0.1", TCP_PORTS, UDP_PORTS)
            if res["summary"]["verified"] != len(tcp_ports) + len(udp_ports):
                sys.exit(f"planned: not all verified: {res}")
            ours.append(wall)
        for i in range(max(reps, udp_reps)):
            t_tcp, ports, _ = nmap(["-sT", "-T5", "-Pn", "-p", TCP_PORTS, "127.0.0.1"])
            if any(ports.get(("tcp", p)) != "open" for p in tcp_ports):
                sys.exit(f"planned: nmap does not see every TCP port open: {ports}")
            if i < udp_reps:
                t_udp, uports, extra = nmap(["-sU", "-T5", "-Pn", "-p", UDP_PORTS, "127.0.0.1"])
                if "closed" in extra or any(s == "closed" for s in uports.values()):
                    sys.exit("planned: nmap sees closed UDP ports the listener holds")
                theirs.append(t_tcp + t_udp)
            tcp_only.append(t_tcp)
        notes.append(f"nmap -sT alone (the 20 TCP ports): {median(tcp_only)*1e3:.1f} ms median")
        notes.append(f"ours: {len(tcp_ports)} TCP + {len(udp_ports)} UDP ports, all verified; "
                     "nmap: TCP all open, UDP all open|filtered (it has no payload our listener "
                     "answers)")
    finally:
        lis.stop()
    return report("planned flows, loopback", ours, theirs, 0.5, notes, [
        f"NETBENCH_MODE=probe NETBENCH_ADDR=127.0.0.1 NETBENCH_TCP={TCP_PORTS} "
        f"NETBENCH_UDP={UDP_PORTS} <net test binary> --ignored --exact bench_driver",
        f"nmap -n -sT -T5 -Pn -p {TCP_PORTS} 127.0.0.1",
        f"nmap -n -sU -T5 -Pn -p {UDP_PORTS} 127.0.0.1"])


def scenario_sweep(binary, reps):
    planned_tcp = set(expand(TCP_PORTS))
    lis = Listener(binary, "127.0.0.1", TCP_PORTS, UDP_PORTS)
    ours, theirs, rss, notes, discarded = [], [], [], [], []
    try:
        for run in range(reps):
            wall, res = probe(binary, "127.0.0.1", TCP_PORTS, UDP_PORTS, NETBENCH_UNEXPECTED=1)
            t, ports, _ = nmap(["-sT", "-T5", "--min-rate", "10000", "-Pn", "-p-", "127.0.0.1"])
            nmap_open = {p for (proto, p), s in ports.items() if proto == "tcp" and s == "open"}
            if set(res["unexpected"]) != nmap_open - planned_tcp:
                sys.exit(f"sweep run {run}: ours {sorted(res['unexpected'])} vs nmap "
                         f"{sorted(nmap_open - planned_tcp)} (planned excluded)")
            if res["summary"]["verified"] != len(planned_tcp) + len(expand(UDP_PORTS)):
                sys.exit(f"sweep run {run}: not all verified: {res}")
            ours.append(wall)
            theirs.append(t)
            rss.append(res["max_rss_kb"])
            discarded.append(res["sweep_discarded"])
        notes.append(f"unexpected ports found, identical to nmap's in all {reps} runs: "
                     f"{sorted(res['unexpected'])}")
        notes.append(f"own connections discarded (loopback self-connects / socket pairs): "
                     f"{discarded}")
        notes.append(f"prober peak RSS: max {max(rss)/1024:.1f} MB over the runs (target < 50 MB)")
    finally:
        lis.stop()
    return report("--unexpected sweep, loopback", ours, theirs, 0.5, notes, [
        "NETBENCH_UNEXPECTED=1 NETBENCH_MODE=probe ... bench_driver (planned probes + sweep)",
        "nmap -n -sT -T5 --min-rate 10000 -Pn -p- 127.0.0.1"]) and max(rss) < 50 * 1024


def sh(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def scenario_filtered(binary, reps):
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("nft"):
        print("\n== filtered: skipped (needs root, ip and nft)")
        return True
    srv, cli = f"scc-bench-{os.getpid()}-s", f"scc-bench-{os.getpid()}-c"
    server = "10.232.0.1"
    dropped, allowed = "31000-31099", "30000-30019"
    tcp = f"{allowed},{dropped}"
    lis = None
    try:
        sh("ip", "netns", "add", srv)
        sh("ip", "netns", "add", cli)
        sh("ip", "link", "add", "vbs", "netns", srv, "type", "veth", "peer", "name", "vbc",
           "netns", cli)
        for ns, dev, cidr in [(srv, "vbs", server + "/24"), (cli, "vbc", "10.232.0.2/24")]:
            sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev)
            sh("ip", "-n", ns, "link", "set", dev, "up")
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        rules = ("table inet scc_bench {\n chain input {\n type filter hook input priority 0; "
                 f"policy accept;\n tcp dport {dropped} drop\n }}\n}}\n")
        subprocess.run(["ip", "netns", "exec", srv, "nft", "-f", "-"], input=rules, text=True,
                       check=True)
        lis = Listener(binary, server, tcp, "", netns=srv)
        results = {}
        for label, ports, want_open in [("100 dropped", dropped, set()),
                                        ("100 dropped + 20 allowed", tcp, set(expand(allowed)))]:
            ours, theirs = [], []
            for _ in range(reps):
                wall, res = probe(binary, server, ports, "", netns=cli)
                s = res["summary"]
                if (s["verified"], s["filtered"]) != (len(want_open), 100):
                    sys.exit(f"filtered ({label}): got {res}")
                t, found, extra = nmap(["-sT", "-T5", "-p", ports, server], netns=cli)
                filt = {p for (proto, p), st in found.items() if st == "filtered"}
                if "filtered" in extra:
                    filt |= set(expand(dropped)) - set(p for (_, p) in found)
                opened = {p for (proto, p), st in found.items() if st == "open"}
                if filt != set(expand(dropped)) or opened != want_open:
                    sys.exit(f"filtered ({label}): nmap disagrees: open {sorted(opened)}, "
                             f"filtered {len(filt)}")
                ours.append(wall)
                theirs.append(t)
            results[label] = (ours, theirs, ports)
    finally:
        if lis:
            lis.stop()
        for ns in (srv, cli):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
    ok = True
    for label, (ours, theirs, ports) in results.items():
        ok &= report(f"{label} TCP ports, namespaces", ours, theirs, 0.2, [
            "both: the dropped ports filtered, the allowed ones verified (ours) / open (nmap)"], [
            f"ip netns exec CLIENT <driver> probe NETBENCH_ADDR={server} NETBENCH_TCP={ports}",
            f"ip netns exec CLIENT nmap -n -sT -T5 -p {ports} {server}"])
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=5, help="runs per measurement (default 5)")
    ap.add_argument("--sweep-reps", type=int, default=10, help="sweep runs (default 10)")
    ap.add_argument("--udp-reps", type=int, default=1,
                    help="nmap -sU runs (about 80 s each; default 1)")
    ap.add_argument("--only", default="planned,sweep,filtered")
    args = ap.parse_args()
    if not shutil.which("nmap"):
        sys.exit("nmap is not installed (bench/netbench.py compares against it)")
    binary = build()
    print(f"driver: {binary}")
    print(f"nmap: {subprocess.run(['nmap', '--version'], stdout=subprocess.PIPE, text=True).stdout.splitlines()[0]}")
    print(f"load average at start: {os.getloadavg()}")
    ok = True
    only = args.only.split(",")
    if "planned" in only:
        ok &= scenario_planned(binary, args.reps, args.udp_reps)
    if "sweep" in only:
        ok &= scenario_sweep(binary, args.sweep_reps)
    if "filtered" in only:
        ok &= scenario_filtered(binary, args.reps)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()

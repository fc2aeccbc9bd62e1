#!/usr/bin/env python3
"""The real CLI against nmap, in one run: one node of the redundant example, moved to loopback.

`scc-ports listen --node APP1` answers on APP1's planned ports (HAC, the CORE unit's TCP ports, the
VOICE unit's TCP ports, SIP over UDP and both MRS areas: 1,624 ports on three loopback addresses);
`scc-ports probe --from lo --node APP1` must verify every one. nmap scans the same ports
(`-sT -T5` for TCP, `-sU -T5` for UDP). Prints medians and the ratio; checks both answers.
Only 127.0.50.x (loopback) is ever probed.

Prerequisites: python3, nmap, a release build (cargo build --release).
Usage: bench/clibench.py [--reps N] [--nmap-udp-reps N]
"""

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scc-ports")


def loopback_redundant():
    text = open(os.path.join(ROOT, "examples", "redundant.toml")).read()
    # Every address of the example onto 127.0.50.x; every zone onto loopback.
    text = re.sub(r'cidrs = \[[^\]]*\]', 'cidrs = ["127.0.0.0/8"]', text)
    text = re.sub(r'"10\.\d+\.0\.(\d+)"', lambda m: '"127.0.50.%s"' % m.group(1), text)
    text = text.replace('address = "127.0.50.11"\nzone = "dmz"', 'address = "127.0.50.31"\nzone = "dmz"')
    text = text.replace('address = "127.0.50.12"\nzone = "dmz"', 'address = "127.0.50.32"\nzone = "dmz"')
    text = text.replace('address = "127.0.50.100"\npackages = ["web-server"', 'address = "127.0.50.130"\npackages = ["web-server"')
    text = text.replace('address = "127.0.50.101"\npackages = ["ecf-web-server"]', 'address = "127.0.50.131"\npackages = ["ecf-web-server"]')
    # The prober's zone carries every role that connects to APP1, so one probe covers the node.
    text = text.replace('roles = ["servers"]', 'roles = ["servers", "clients", "admins", "trunk"]', 1)
    return text


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--nmap-udp-reps", type=int, default=1)
    args = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit(f"build first: cargo build --release ({BIN} missing)")
    if not shutil.which("nmap"):
        sys.exit("nmap is not installed")
    work = tempfile.mkdtemp()
    dep = os.path.join(work, "lo.toml")
    open(dep, "w").write(loopback_redundant())
    secret = os.path.join(work, "secret")
    open(secret, "w").write("clibench")
    plan = json.loads(subprocess.run([BIN, "plan", dep, "--node", "APP1", "--format", "json"],
                                     check=True, stdout=subprocess.PIPE, text=True).stdout)
    tcp, udp = {}, {}
    for b in plan["bindings"]:
        ports = range(b["first_port"], b["last_port"] + 1)
        if b["parity"]:
            ports = [p for p in ports if p % 2 == (0 if b["parity"] == "even" else 1)]
        (tcp if b["transport"] == "tcp" else udp).setdefault(b["address"], set()).update(ports)
    total = sum(len(v) for v in tcp.values()) + sum(len(v) for v in udp.values())
    listener = subprocess.Popen([BIN, "listen", dep, "--node", "APP1", "--secret-file", secret, "--duration", "30m"],
                                stdout=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        for line in listener.stdout:
            if line.startswith("ready:"):
                break
            print("listener:", line.rstrip())
        ready = time.monotonic() - t0
        ours = []
        for _ in range(args.reps):
            t = time.monotonic()
            out = subprocess.run([BIN, "probe", dep, "--from", "datacenter", "--node", "APP1", "--secret-file", secret,
                                  "--format", "json"], stdout=subprocess.PIPE, text=True)
            ours.append(time.monotonic() - t)
            report = json.loads(out.stdout)
            s = report["summary"]
            assert out.returncode == 0 and s["verified"] == total, (out.returncode, s, total)
        nmap_tcp, nmap_udp = [], []
        spec = lambda ports: ",".join(str(p) for p in sorted(ports))
        for _ in range(args.reps):
            t = time.monotonic()
            for addr, ports in tcp.items():
                out = subprocess.run(["nmap", "-n", "-Pn", "-sT", "-T5", "-p", spec(ports), addr, "-oG", "-"],
                                     check=True, stdout=subprocess.PIPE, text=True).stdout
                assert out.count("/open/") == len(ports), out
            nmap_tcp.append(time.monotonic() - t)
        for _ in range(args.nmap_udp_reps):
            t = time.monotonic()
            for addr, ports in udp.items():
                subprocess.run(["nmap", "-n", "-Pn", "-sU", "-T5", "-p", spec(ports), addr, "-oG", "-"],
                               check=True, stdout=subprocess.PIPE)
            nmap_udp.append(time.monotonic() - t)
    finally:
        listener.terminate()
        listener.wait(timeout=10)
    o, nt, nu = statistics.median(ours), statistics.median(nmap_tcp), statistics.median(nmap_udp)
    print(f"node APP1 of examples/redundant.toml on loopback: {total} planned ports "
          f"({sum(len(v) for v in tcp.values())} tcp, {sum(len(v) for v in udp.values())} udp)")
    print(f"listener ready after {ready * 1000:.0f} ms")
    print(f"scc-ports probe (all verified): median {o * 1000:.1f} ms over {args.reps} runs")
    print(f"nmap -sT -T5: median {nt * 1000:.1f} ms over {args.reps}; nmap -sU -T5: median {nu * 1000:.0f} ms over {args.nmap_udp_reps}")
    print(f"ratio ours / nmap = {o / (nt + nu):.4f} (target <= 0.5)")


if __name__ == "__main__":
    main()

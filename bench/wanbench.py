#!/usr/bin/env python3
"""The real CLI over a WAN path against nmap: 80 ms round trip, 1% loss each way (fixed seed).

Two network namespaces (server, client) joined by `delayline` (bench/delayline.c, built
into target/wan/ with gcc): two TUN devices, a fixed one-way delay and seeded random loss. The
server namespace holds node APP1 of examples/redundant.toml at its real addresses (10.1.0.11,
unit CORE 10.1.0.100, unit VOICE 10.1.0.101, on its loopback); the client is 10.1.0.200 (in
the datacenter zone, whose roles are widened so one probe covers every port of APP1, both MRS areas at their maximum: 1,626).
Nothing is sent outside these two namespaces.

Scenarios:
  probe   `scc-ports listen --node APP1` in the server, `scc-ports probe --from datacenter
          --node APP1 --format json` in the client: every run must verify every port; counts
          false results (anything not verified) and exit codes; vs `nmap -n -Pn -sT` on the
          same TCP ports (which must all be open).
  sweep   200 extra TCP listeners on each of the three addresses (40000-40199: 600 in all)
          beside the listener; `probe --unexpected` must report exactly those 600 (and exit 1
          for them, not inconclusive); vs `nmap -n -Pn -sT -p- --min-rate 10000` on the same
          three addresses in the same run, which must find the same 600.

Prerequisites: root (network namespaces, TUN devices), gcc, nmap, python3, a release build.
Usage (cargo build --release first):
  sudo bench/wanbench.py [--reps 10] [--only probe,sweep] [--delay-ms 40] [--loss 1]
                         [--bin PATH] [--delayline FILE.c]
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
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
BIN = os.path.join(TARGET, "release", "scc-ports")
SERVER_ADDRS = ["10.1.0.11", "10.1.0.100", "10.1.0.101"]
CLIENT = "10.1.0.200"
EXTRA = list(range(40000, 40200))


def delayline_source(given):
    """The delay line's C source: --delayline, else $SCC_PORTS_DELAYLINE_C, else the copy in bench/."""
    for cand in (given, os.environ.get("SCC_PORTS_DELAYLINE_C"),
                 os.path.join(ROOT, "bench", "delayline.c")):
        if cand:
            if not os.path.exists(cand):
                sys.exit(f"delayline source {cand} not found")
            return cand
    sys.exit("unreachable")


def build_delayline(given):
    out = os.path.join(TARGET, "wan", "delayline")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-o", out, delayline_source(given)], check=True)
    return out


def sh(*args, **kw):
    return subprocess.run(list(args), check=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True, **kw)


class Wan:
    """Server and client namespaces over the delay line; removed by close()."""

    def __init__(self, delayline, delay_ms, loss):
        pid = os.getpid()
        self.srv, self.cli = f"scc-wanb{pid}-s", f"scc-wanb{pid}-c"
        for ns in (self.srv, self.cli):
            sh("ip", "netns", "add", ns)
            sh("ip", "-n", ns, "link", "set", "lo", "up")
        self.dl = subprocess.Popen([delayline, self.srv, "wan0", self.cli, "wan0", str(delay_ms),
                                    str(loss)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True)
        if self.dl.stdout.readline().strip() != "up":
            self.close()
            sys.exit("delayline did not come up: " + self.dl.stderr.read())
        sh("ip", "-n", self.srv, "link", "set", "wan0", "up")
        sh("ip", "-n", self.cli, "link", "set", "wan0", "up")
        for a in SERVER_ADDRS:
            sh("ip", "-n", self.srv, "addr", "add", a + "/32", "dev", "lo")
        sh("ip", "-n", self.srv, "route", "add", CLIENT + "/32", "dev", "wan0")
        sh("ip", "-n", self.cli, "addr", "add", CLIENT + "/32", "dev", "wan0")
        sh("ip", "-n", self.cli, "route", "add", "10.1.0.0/24", "dev", "wan0", "src", CLIENT)

    def close(self):
        counters = ""
        if self.dl.poll() is None:
            self.dl.terminate()
            try:
                counters = self.dl.communicate(timeout=10)[1].strip()
            except subprocess.TimeoutExpired:
                self.dl.kill()
        for ns in (self.srv, self.cli):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)
        return counters


def deployment():
    text = open(os.path.join(ROOT, "examples", "redundant.toml")).read()
    # The prober's zone carries every role that connects to APP1, so one probe covers the node;
    # both MRS areas at their maximum (the example caps recordings at 100).
    text = re.sub(r'"media-routing-server\.max-simultaneous-recordings" = \d+\n', "", text)
    return text.replace('roles = ["servers"]', 'roles = ["servers", "clients", "admins", "trunk"]', 1)


def planned_ports(binary, dep):
    plan = json.loads(sh(binary, "plan", dep, "--node", "APP1", "--format", "json").stdout)
    tcp, udp = {}, {}
    for b in plan["bindings"]:
        ports = range(b["first_port"], b["last_port"] + 1)
        if b["parity"]:
            ports = [p for p in ports if p % 2 == (0 if b["parity"] == "even" else 1)]
        (tcp if b["transport"] == "tcp" else udp).setdefault(b["address"], set()).update(ports)
    return tcp, udp


class Listener:
    def __init__(self, wan, binary, dep, secret):
        self.proc = subprocess.Popen(["ip", "netns", "exec", wan.srv, binary, "listen", dep, "--node",
                                      "APP1", "--secret-file", secret, "--duration", "30m"],
                                     stdout=subprocess.PIPE, text=True)
        for line in self.proc.stdout:
            if line.startswith("ready:"):
                print("listener:", line.strip())
                return
            print("listener:", line.rstrip())
        sys.exit("listener never got ready")

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class Extra:
    """200 TCP listeners the plan does not know on each server address, in the server namespace."""

    def __init__(self, wan):
        code = ("import socket,sys\nss=[]\nfor a in %r:\n for p in range(%d,%d):\n  s=socket.socket(); "
                "s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1); s.bind((a,p)); "
                "s.listen(64); ss.append(s)\nprint('up',flush=True)\nsys.stdin.read()\n"
                % (SERVER_ADDRS, EXTRA[0], EXTRA[-1] + 1))
        self.proc = subprocess.Popen(["ip", "netns", "exec", wan.srv, sys.executable, "-c", code],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout.readline().strip() == "up"

    def stop(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=10)


def run_probe(wan, binary, dep, secret, unexpected=False):
    cmd = ["ip", "netns", "exec", wan.cli, binary, "probe", dep, "--from", "datacenter", "--node",
           "APP1", "--secret-file", secret, "--format", "json"] + (["--unexpected"] if unexpected else [])
    t = time.monotonic()
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - t
    try:
        report = json.loads(out.stdout)
    except ValueError:
        sys.exit(f"probe printed no JSON (exit {out.returncode}): {out.stderr}")
    return wall, out.returncode, report


def nmap_tcp(wan, ports_by_addr):
    t = time.monotonic()
    found = 0
    for addr, ports in ports_by_addr.items():
        spec = ",".join(str(p) for p in sorted(ports))
        out = sh("ip", "netns", "exec", wan.cli, "nmap", "-n", "-Pn", "-sT", "-p", spec, addr,
                 "-oG", "-").stdout
        found += out.count("/open/")
    return time.monotonic() - t, found


def nmap_sweep(wan):
    t = time.monotonic()
    out = sh("ip", "netns", "exec", wan.cli, "nmap", "-n", "-Pn", "-sT", "-p-", "--min-rate",
             "10000", *SERVER_ADDRS, "-oG", "-").stdout
    wall = time.monotonic() - t
    found = set()
    for line in out.splitlines():
        m = re.match(r"Host: (\S+) .*Ports:", line)
        if m:
            found |= {(m.group(1), int(p)) for p in re.findall(r"(\d+)/open/tcp", line)}
    return wall, found


def expected_extra():
    return {(a, p) for a in SERVER_ADDRS for p in EXTRA}


def load():
    return open("/proc/loadavg").read().split()[0]


def med(xs):
    return statistics.median(xs) if xs else float("nan")


def scenario_probe(wan, binary, dep, secret, reps, tcp, udp):
    total = sum(len(v) for v in tcp.values()) + sum(len(v) for v in udp.values())
    ntcp = sum(len(v) for v in tcp.values())
    lis = Listener(wan, binary, dep, secret)
    try:
        walls, false_results, bad_runs, codes, attempts = [], 0, 0, [], []
        for i in range(reps):
            wall, code, rep = run_probe(wan, binary, dep, secret)
            wrong = [r for r in rep["results"] if r["status"] != "verified"]
            false_results += len(wrong)
            bad_runs += bool(wrong) or code != 0
            walls.append(wall)
            codes.append(code)
            extra = sum(r.get("attempts", 1) for r in rep["results"]) - len(rep["results"])
            attempts.append(extra)
            print(f"  probe run {i + 1}: {wall:.2f} s, exit {code}, {len(rep['results'])} results,"
                  f" {len(wrong)} not verified {[(r['transport'], r['port'], r['status']) for r in wrong][:6]},"
                  f" {extra} retries")
        nm, nm_ok = [], 0
        for _ in range(reps):
            w, found = nmap_tcp(wan, tcp)
            nm.append(w)
            nm_ok += found == ntcp
    finally:
        lis.stop()
    print(f"probe: node APP1, {total} planned ports ({ntcp} tcp), {reps} runs")
    print(f"  scc-ports probe: median {med(walls):.2f} s, max {max(walls):.2f} s; false results "
          f"{false_results} in {bad_runs} of {reps} runs; exit codes {codes}")
    print(f"  nmap -sT (the {ntcp} TCP ports only): median {med(nm):.2f} s, all open in {nm_ok} of {reps}")
    print(f"  ratio ours (all {total}) / nmap -sT (TCP only) = {med(walls) / med(nm):.2f}")


def scenario_sweep(wan, binary, dep, secret, reps, tcp):
    lis = Listener(wan, binary, dep, secret)
    extra = Extra(wan)
    want = expected_extra()
    planned = {(a, p) for a, ports in tcp.items() for p in ports}
    try:
        walls, nm, misses, false_open, nm_ok, codes, loads = [], [], 0, 0, 0, [], []
        # Ours and nmap's alternate, run by run, so both see the same machine.
        for i in range(reps):
            loads.append(load())
            wall, code, rep = run_probe(wan, binary, dep, secret, unexpected=True)
            found = {(u["address"], u["port"]) for u in rep["unexpected"]}
            ok = found == want
            misses += not ok
            false_open += len(found - want)
            walls.append(wall)
            codes.append(code)
            w, nfound = nmap_sweep(wan)
            nm.append(w)
            nm_ok += (nfound - planned) == want
            sw = rep.get("sweep", {})
            passes = [s["passes"] for s in sw.get("addresses", [])]
            print(f"  run {i + 1} (load {loads[-1]}): ours {wall:.2f} s, exit {code}, found "
                  f"{len(found & want)} of {len(want)}{'' if ok else ' WRONG'}, false open "
                  f"{len(found - want)}, not verified "
                  f"{sum(r['status'] != 'verified' for r in rep['results'])}, passes {passes}, "
                  f"inconclusive {sw.get('inconclusive')}; nmap {w:.2f} s, found "
                  f"{len((nfound - planned) & want)}", flush=True)
    finally:
        extra.stop()
        lis.stop()
    print(f"sweep: {len(EXTRA)} unexpected open ports on each of {', '.join(SERVER_ADDRS)} "
          f"({len(want)} in all; plus APP1's planned ports), {reps} runs, load average {min(loads, key=float)}-{max(loads, key=float)}")
    print(f"  scc-ports probe --unexpected: median {med(walls):.2f} s, max {max(walls):.2f} s; "
          f"all {len(want)} found in {reps - misses} of {reps} runs; false open {false_open}; exit codes {codes}")
    print(f"  nmap -n -Pn -sT -p- --min-rate 10000 (the same 3 addresses): median {med(nm):.2f} s, "
          f"all {len(want)} found in {nm_ok} of {reps}")
    print(f"  ratio ours / nmap = {med(walls) / med(nm):.2f} (target <= 0.5)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--only", default="probe,sweep")
    ap.add_argument("--delay-ms", type=float, default=40.0, help="one-way delay")
    ap.add_argument("--loss", type=float, default=1.0, help="loss percent, each way")
    ap.add_argument("--bin", default=BIN)
    ap.add_argument("--delayline", help="the delay line's C source (default: bench/delayline.c)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (network namespaces, TUN devices)")
    if not os.path.exists(args.bin):
        sys.exit(f"build first: cargo build --release ({args.bin} missing)")
    for tool in ("nmap", "gcc"):
        if not shutil.which(tool):
            sys.exit(f"{tool} is not installed (bench/wanbench.py needs root, gcc, nmap)")
    delayline = build_delayline(args.delayline)
    work = tempfile.mkdtemp()
    dep = os.path.join(work, "wan.toml")
    open(dep, "w").write(deployment())
    secret = os.path.join(work, "secret")
    with open(os.open(secret, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        f.write("wanbench secret of 32 bytes, ok!")
    tcp, udp = planned_ports(args.bin, dep)
    wan = Wan(delayline, args.delay_ms, args.loss)
    print(f"path: {2 * args.delay_ms:.0f} ms round trip, {args.loss}% loss each way (delayline, fixed seed)")
    try:
        only = args.only.split(",")
        if "probe" in only:
            scenario_probe(wan, args.bin, dep, secret, args.reps, tcp, udp)
        if "sweep" in only:
            scenario_sweep(wan, args.bin, dep, secret, args.reps, tcp)
    finally:
        print("delayline:", wan.close())
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

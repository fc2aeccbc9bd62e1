#!/usr/bin/env python3
"""`nft -f` load time and rule counts of `scc-ports firewall --target nftables --network` (and
any other mode/target's generation time) on generated multi-site systems, in a fresh network
namespace per load (nothing on the host's ruleset is touched).

The systems: sites of 50 nodes, each site with its own server zone (a /24, spaced so that no two
sites aggregate into one network) and its own agent zone, one admin zone, and one virtual unit per
two nodes (two instances, one package each, cycling through 8 packages with distinct ports), as
in `scc_ports::deployment::generate::large_system` but with a zone pair per site: the shape in
which the sources of the `servers` and `clients` roles grow with the system (issue #13).

Usage:
  cargo build --release
  bench/nftload.py [--bin target/release/scc-ports] [--sizes 1000,10000,100000]
                   [--reps 3] [--timeout 600] [--target nftables] [--mode --network]
  bench/nftload.py --write-system 10000 > sites-10k.toml     # only the deployment file

Prints one row per size: generation time, bytes, rules, set elements, nft -f load time
(median of --reps; needs root and `ip netns`).
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

PACKAGES = [
    ("agent-server", "port"),
    ("alarm-server", "port"),
    ("call-dispatcher", "port"),
    ("chat-server", "port"),
    ("data-collector", "port"),
    ("directory-server", "port"),
    ("file-replication-server", "port"),
    ("quality-monitoring-server", "port"),
]
SITE = 50


def system(nodes: int) -> str:
    """A deployment file of `nodes` nodes in sites of 50, and nodes/2 units."""
    sites = max(1, (nodes + SITE - 1) // SITE)
    out = ['name = "sites"\n']
    out.append('[zones.admins]\ncidrs = ["192.168.0.0/24"]\nroles = ["admins"]\n')

    def dc(s, host):
        n = 2 * s  # every other /24: sites never aggregate into one network
        return f"10.{(n >> 8) & 0xFF}.{n & 0xFF}.{host}"

    for s in range(sites):
        n = 2 * s
        out.append(
            f'[zones.dc{s}]\ncidrs = ["{dc(s, 0)}/24"]\nroles = ["servers"]\n\n'
            f'[zones.agents{s}]\ncidrs = ["172.{16 + ((n >> 8) & 0xF)}.{n & 0xFF}.0/24"]\n'
            'roles = ["clients"]\n'
        )
    for i in range(nodes):
        s, k = divmod(i, SITE)
        out.append(f'[nodes.N{i}]\naddress = "{dc(s, 1 + k)}"\nzone = "dc{s}"\n')
    for u in range(nodes // 2):
        pkg, port = PACKAGES[u % len(PACKAGES)]
        a = u * 2
        b = a + 1
        s, k = divmod(a, SITE)
        out.append(
            f'[units.U{u}]\naddress = "{dc(s, 100 + k // 2)}"\npackages = ["{pkg}"]\n'
            f'instances = ["N{a}", "N{b}"]\n\n[units.U{u}.variables]\n'
            f'"{pkg}.{port}" = {1024 + u % 40000}\n'
        )
    return "\n".join(out)


def count(rules: str):
    """Rules and set elements of an nft file (a rule: a line ending in accept/drop inside a
    chain, after the chain's header lines)."""
    n_rules = sum(
        1
        for line in rules.splitlines()
        if re.search(r"\b(accept|drop)\b", line)
        and not line.strip().startswith(("#", "type "))
        and "policy" not in line
    )
    elements = 0
    inside = False
    for line in rules.splitlines():
        s = line.strip()
        if s.startswith("elements = {"):
            inside = True
            s = s[len("elements = {") :]
        if inside:
            elements += len(re.findall(r'comment "[^"]*"', s)) or (
                s.count(",") + (0 if s.endswith(",") or s in ("", "}") else 1)
            )
            if s.endswith("}"):
                inside = False
    return n_rules, elements


def load_once(path: str, timeout: float) -> float:
    ns = f"scc-nftload-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        t = time.monotonic()
        subprocess.run(["ip", "netns", "exec", ns, "nft", "-f", path], check=True, timeout=timeout)
        return time.monotonic() - t
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default="target/release/scc-ports")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=600)
    ap.add_argument("--target", default="nftables")
    ap.add_argument("--mode", default="--network", help="--network, --workstations or '--node N0'")
    ap.add_argument("--no-load", action="store_true", help="only generate and count")
    ap.add_argument("--write-system", type=int, metavar="NODES")
    a = ap.parse_args()
    if a.write_system:
        sys.stdout.write(system(a.write_system))
        return 0
    print(f"| nodes | target | mode | generate (s) | bytes | rules | set elements | nft -f load (s) |")
    print("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as d:
        for n in (int(x) for x in a.sizes.split(",")):
            dep = os.path.join(d, f"sites-{n}.toml")
            with open(dep, "w") as f:
                f.write(system(n))
            t = time.monotonic()
            r = subprocess.run(
                [a.bin, "firewall", dep, "--target", a.target, *a.mode.split()],
                capture_output=True, text=True, timeout=a.timeout,
            )
            gen = time.monotonic() - t
            if r.returncode != 0:
                print(f"generation failed at {n}: {r.stderr[:500]}", file=sys.stderr)
                return 1
            rules_path = os.path.join(d, f"rules-{n}")
            with open(rules_path, "w") as f:
                f.write(r.stdout)
            n_rules, elements = count(r.stdout) if a.target == "nftables" else ("", "")
            load = ""
            if a.target == "nftables" and not a.no_load:
                try:
                    times = [load_once(rules_path, a.timeout) for _ in range(a.reps)]
                    load = f"{statistics.median(times):.3f}"
                except subprocess.TimeoutExpired:
                    load = f"> {a.timeout:.0f}"
            print(
                f"| {n:,} | {a.target} | {a.mode} | {gen:.3f} | {len(r.stdout):,} | {n_rules} "
                f"| {elements} | {load} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""The audit at scale and under attack: writes the rulesets of issue 23 (item 4) and of
docs/performance.md's audit section, then times `scc-ports audit` on each (wall time and peak
memory from /usr/bin/time), against tests/audit/lab.toml for node APP1.

Cases: 40 chains each jumping to the next twice; a 20,000-address blocklist set (nft JSON, and
iptables-save + ipset save); a 20,000-port set; AWS with 10,000 permissions; 10,000 rules looking up
one 10,000-element set; an unparsed rule of 240 KB and one of 400 KB nested braces; one rule with a
500,000-address set.

Usage: bench/audit_cases.py [--timeout S] [CASE...]   (build first: cargo build --release)
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scc-ports")
LAB = os.path.join(ROOT, "tests", "audit", "lab.toml")


def addr(i, base=(11 << 24)):
    n = base + i
    return f"{n >> 24 & 255}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def nft_doc(sets, rules, policy="accept"):
    items = [{"table": {"family": "inet", "name": "f", "handle": 1}},
             {"chain": {"family": "inet", "table": "f", "name": "input", "handle": 2, "type": "filter",
                        "hook": "input", "prio": 0, "policy": policy}}]
    for name, typ, elems in sets:
        items.append({"set": {"family": "inet", "table": "f", "name": name, "handle": 3, "type": typ,
                              "flags": ["interval"], "elem": elems}})
    for h, expr in enumerate(rules):
        items.append({"rule": {"family": "inet", "table": "f", "chain": "input", "handle": 10 + h, "expr": expr}})
    return json.dumps({"nftables": items})


def match(proto, field, right, op="=="):
    return {"match": {"op": op, "left": {"payload": {"protocol": proto, "field": field}}, "right": right}}


def chains40():
    lines = ["*filter", ":INPUT ACCEPT [0:0]"] + [f":C{i} - [0:0]" for i in range(40)]
    lines.append("-A INPUT -j C0")
    for i in range(39):
        lines += [f"-A C{i} -j C{i + 1}", f"-A C{i} -j C{i + 1}"]
    lines += ["-A C39 -p tcp -m tcp --dport 1 -j DROP", "COMMIT", ""]
    return "\n".join(lines)


# The blocklist cases are a host firewall as CrowdSec or fail2ban leave it: policy drop, the
# blocklist dropped first, then the site's zones accepted (so the report lists the few openings
# of that accept, not one per address outside the blocklist).
ZONES = {"prefix": {"addr": "10.88.0.0", "len": 16}}


def blocklist_nft(n):
    return nft_doc([("blocklist", "ipv4_addr", [addr(2 * i) for i in range(n)])],
                   [[match("ip", "saddr", "@blocklist"), {"drop": None}],
                    [match("ip", "saddr", ZONES), {"accept": None}]], policy="drop")


def blocklist_ipset(n):
    lines = ["create blocklist hash:ip family inet hashsize 1024 maxelem 1000000"]
    lines += [f"add blocklist {addr(2 * i)}" for i in range(n)]
    lines += ["*filter", ":INPUT DROP [0:0]", "-A INPUT -m set --match-set blocklist src -j DROP",
              "-A INPUT -s 10.88.0.0/16 -j ACCEPT", "COMMIT", ""]
    return "\n".join(lines)


def ports_set(n):
    return nft_doc([("ports", "inet_service", [1 + 2 * i for i in range(n)])],
                   [[match("tcp", "dport", "@ports"), {"drop": None}],
                    [match("ip", "saddr", ZONES), {"accept": None}]], policy="drop")


def aws(n):
    perms = [{"IpProtocol": "tcp", "FromPort": 1 + i % 60000, "ToPort": 1 + i % 60000,
              "IpRanges": [{"CidrIp": addr(i) + "/32"}]} for i in range(n)]
    return json.dumps({"SecurityGroups": [{"GroupId": "sg-1", "GroupName": "big", "IpPermissions": perms,
                                           "IpPermissionsEgress": []}]})


def rules_times_set(n_rules, n_elems):
    rules = [[match("ip", "saddr", "@blocklist"), match("tcp", "dport", 1 + i), {"drop": None}]
             for i in range(n_rules)]
    rules.append([match("ip", "saddr", ZONES), {"accept": None}])
    return nft_doc([("blocklist", "ipv4_addr", [addr(2 * i) for i in range(n_elems)])], rules, policy="drop")


def unparsed(size, nested):
    body = ("{ " * (size // 4) + "} " * (size // 4)) if nested else ("x" * size)
    return ("table inet f {\n  chain input {\n    type filter hook input priority 0; policy accept;\n"
            f"    tcp dport 1-65535 frobnicate {body} accept\n  }}\n}}\n")


CASES = {
    "chains40": ("iptables-save", chains40),
    "blocklist20k-nft": ("json", lambda: blocklist_nft(20_000)),
    "blocklist20k-ipset": ("iptables-save", lambda: blocklist_ipset(20_000)),
    "ports20k": ("json", lambda: ports_set(20_000)),
    "aws10k": ("json", lambda: aws(10_000)),
    "rules10k-x-set10k": ("json", lambda: rules_times_set(10_000, 10_000)),
    "unparsed240k": ("nft", lambda: unparsed(240_000, False)),
    "unparsed400k-braces": ("nft", lambda: unparsed(400_000, True)),
    "set500k": ("json", lambda: blocklist_nft(500_000)),
}


def run(name, timeout):
    ext, make = CASES[name]
    text = make()
    with tempfile.NamedTemporaryFile("w", suffix="." + ext, delete=False) as f:
        f.write(text)
        path = f.name
    cmd = ["/usr/bin/time", "-f", "%e %U %S %M", BIN, "audit", LAB, "--node", "APP1", "--ruleset", path,
           "--format", "json"]
    t0 = time.time()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        os.unlink(path)
        return f"{name:22} {len(text) / 1e6:7.2f} MB  over {timeout} s (stopped)"
    os.unlink(path)
    last = p.stderr.strip().splitlines()[-1] if p.stderr.strip() else ""
    m = re.match(r"([\d.]+) ([\d.]+) ([\d.]+) (\d+)$", last)
    if not m:
        return f"{name:22} exit {p.returncode}: {p.stderr.strip()[-300:]}"
    secs, cpu, kb = float(m.group(1)), float(m.group(2)) + float(m.group(3)), int(m.group(4))
    summary = ""
    try:
        s = json.loads(p.stdout)["summary"]
        summary = f"admitted {s['admitted']}/{s['flows']}, undecided {s['undecided']}, extra {s['extra']}"
    except (ValueError, KeyError):
        summary = p.stderr.strip().splitlines()[0][:120] if p.stderr.strip() else ""
    return (f"{name:22} {len(text) / 1e6:7.2f} MB  {secs:7.2f} s wall  {cpu:7.2f} s CPU  {kb / 1024:8.1f} MiB"
            f"  exit {p.returncode}  {summary}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("cases", nargs="*")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    for name in a.cases or CASES:
        print(run(name, a.timeout), flush=True)
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    sys.exit(main())

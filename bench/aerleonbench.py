#!/usr/bin/env python3
"""Aerleon's aclgen over our `--target aerleon --network` policy of every example: the time of the
render (median of N runs, wall clock, aclgen's own start-up included) and the size of every file
it writes, per platform.

Usage: bench/aerleonbench.py [--reps N]   (build first: cargo build --release; aclgen from
SCC_PORTS_ACLGEN or the PATH)
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target")), "release", "scc-ports")
ACLGEN = os.environ.get("SCC_PORTS_ACLGEN") or shutil.which("aclgen") or "aclgen"
PLATFORM = {".asa": "ciscoasa", ".xml": "paloalto", ".srx": "srx", ".fgacl": "fortigate", ".nft": "nftables", "": "iptables"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    print("| example | policy (pol + def) | aclgen, median of %d | files written (bytes) |" % args.reps)
    print("| --- | ---: | ---: | --- |")
    for example in ["all-in-one", "redundant", "large", "services", "two-offices"]:
        with tempfile.TemporaryDirectory() as tmp:
            pol = os.path.join(tmp, "policy")
            subprocess.run([BIN, "firewall", os.path.join(ROOT, "examples", example + ".toml"),
                            "--target", "aerleon", "--network", "-o", pol], check=True)
            policy_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(pol) for f in fs)
            times = []
            for i in range(args.reps):
                out = os.path.join(tmp, "out%d" % i)
                os.mkdir(out)
                t0 = time.monotonic()
                run = subprocess.run([ACLGEN, "--base_directory", pol, "--definitions_directory",
                                      os.path.join(pol, "def"), "--output_directory", out],
                                     capture_output=True, text=True)
                times.append(time.monotonic() - t0)
                if run.returncode != 0:
                    sys.exit("aclgen failed:\n" + run.stderr)
            sizes = []
            for f in sorted(os.listdir(out)):
                ext = os.path.splitext(f)[1]
                sizes.append("%s %s %d" % (f, PLATFORM.get(ext, "?"), os.path.getsize(os.path.join(out, f))))
            print("| %s | %d B | %.2f s | %s |" % (example, policy_bytes, statistics.median(times), ", ".join(sizes)))


if __name__ == "__main__":
    main()

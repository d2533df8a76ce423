#!/usr/bin/env python3
"""Benchmark (not a test): a second, no-op ``lxdctl init`` and ``lxdctl --help``, each next
to its raw baseline.

* no-op init  vs  ``ansible-playbook`` of an empty play on localhost (Ansible's own start cost)
* ``lxdctl --help``  vs  ``python -c pass`` (the interpreter's start cost)

Run on a host where ``lxdctl init`` has already run, as root:
    python bench/bench_init.py [--runs N] [-- extra lxdctl init options]
Default init options are the test platform's: --yes --no-nat --with-pebble.
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from lxdctl.collection import collections_path


def timed(argv, runs, env=None, check_output=None):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run(argv, capture_output=True, text=True, env=env)
        times.append(time.perf_counter() - start)
        if proc.returncode != 0:
            sys.exit("%s failed (rc=%d):\n%s" % (" ".join(argv), proc.returncode, proc.stderr[-2000:]))
        if check_output and check_output not in proc.stderr + proc.stdout:
            sys.exit("%s did not print %r:\n%s" % (" ".join(argv), check_output, proc.stderr[-2000:]))
    return statistics.median(times), min(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per measurement (median is shown)")
    parser.add_argument("init_options", nargs="*", default=["--yes", "--no-nat", "--with-pebble"])
    args = parser.parse_args()
    bindir = os.path.dirname(sys.executable)
    lxdctl = os.path.join(bindir, "lxdctl")

    with tempfile.TemporaryDirectory() as tmp:
        empty = os.path.join(tmp, "empty.yml")
        with open(empty, "w") as handle:
            handle.write("- hosts: localhost\n  gather_facts: false\n  tasks: []\n")
        env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path())
        baseline_play = timed([os.path.join(bindir, "ansible-playbook"), "-i", "localhost,", "-c", "local",
                               "-e", "ansible_python_interpreter=%s" % sys.executable, empty], args.runs, env)

    # The first init may still have work to do; the measured ones must be no-ops.
    timed([lxdctl, "init"] + args.init_options, 1)
    noop_init = timed([lxdctl, "init"] + args.init_options, args.runs, check_output="done: 0 changes")
    baseline_python = timed([sys.executable, "-c", "pass"], max(args.runs, 5))
    help_time = timed([lxdctl, "--help"], max(args.runs, 5))

    rows = [
        ("no-op lxdctl init", noop_init, "ansible-playbook, empty play", baseline_play),
        ("lxdctl --help", help_time, "python -c pass", baseline_python),
    ]
    print("%-20s %9s %9s   %-30s %9s   %s" % ("measurement", "median s", "min s", "baseline", "median s", "ratio"))
    for name, (med, low), base_name, (base_med, _) in rows:
        print("%-20s %9.2f %9.2f   %-30s %9.2f   %.1fx" % (name, med, low, base_name, base_med, med / base_med))


if __name__ == "__main__":
    main()

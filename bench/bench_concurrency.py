#!/usr/bin/env python3
"""Benchmark: creates and deploys of different projects at the same time; all must succeed.

    python bench/bench_concurrency.py [--creates 20] [--deploys 10] [--serial 2] [--prefix bench-conc]

1. Serial baseline: ``--serial`` creates one after another (projects ``<prefix>-s01`` …), each
   timed; then the same number of deploys of them, one after another.
2. ``--creates`` projects (``<prefix>-01`` …, container + PostgreSQL + Redis + DNS + nginx)
   created by as many ``lxdctl create`` processes started at once.
3. ``--deploys`` of those projects deployed at once (``lxdctl deploy --path samples/python-hello``);
   then each site must answer its ``/health`` through nginx.

Every process must exit 0 (the failures are printed).  Prints the wall time, the throughput
(operations per minute), the serial baseline's throughput and the ratio (parallel / serial).
Everything is deleted at the end (``--keep`` keeps it).  On a 2-core host with other work
running, ``--creates 8 --deploys 4`` gives figures in a few minutes.
"""
import argparse
import os
import subprocess
import sys
import time

LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "samples", "python-hello")


def start(*args):
    return subprocess.Popen([LXDCTL] + list(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def run_all(commands, width=None):
    """Run the commands, at most ``width`` at once (all by default); ``(wall, [(cmd, rc, err)])``."""
    width = width or len(commands)
    started = time.monotonic()
    pending, running, results = list(commands), [], []
    while pending or running:
        while pending and len(running) < width:
            cmd = pending.pop(0)
            running.append((cmd, start(*cmd)))
        for item in list(running):
            cmd, proc = item
            if proc.poll() is not None:
                _out, err = proc.communicate()
                results.append((cmd, proc.returncode, err))
                running.remove(item)
        time.sleep(0.1)
    return time.monotonic() - started, results


def create_cmd(name):
    return ("create", name, "--runtime", "python", "--db", "postgres", "--cache", "redis")


def deploy_cmd(name):
    return ("deploy", name, "--path", SAMPLE, "--no-build")


def healthy(name):
    proc = subprocess.run(["curl", "-s", "--max-time", "10", "-H", "Host: %s.lxdctl.test" % name,
                           "http://127.0.0.1/health"], capture_output=True, text=True)
    return proc.stdout.strip() == "ok"


def failures(results):
    bad = [(cmd, rc, (err.strip().splitlines() or ["?"])[-1]) for cmd, rc, err in results if rc != 0]
    for cmd, rc, last in bad:
        print("  FAILED (rc=%s) lxdctl %s: %s" % (rc, " ".join(cmd[:2]), last))
    return bad


def line(what, count, wall, serial_each):
    parallel = count / wall * 60
    serial = 60 / serial_each if serial_each else 0
    print("  %-28s %3d in %6.1f s  %6.2f /min   serial %6.2f /min   ratio %.2f"
          % (what, count, wall, parallel, serial, parallel / serial if serial else 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--creates", type=int, default=20)
    parser.add_argument("--deploys", type=int, default=10)
    parser.add_argument("--serial", type=int, default=2)
    parser.add_argument("--prefix", default="bench-conc")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    if args.deploys > args.creates:
        raise SystemExit("--deploys must not exceed --creates")
    serial_names = ["%s-s%02d" % (args.prefix, i) for i in range(1, args.serial + 1)]
    names = ["%s-%02d" % (args.prefix, i) for i in range(1, args.creates + 1)]
    everything = serial_names + names
    run_all([("delete", n, "--yes") for n in everything], width=4)
    bad = []
    try:
        print("serial baseline: %d creates, then %d deploys, one at a time" % (args.serial, args.serial), flush=True)
        create_serial, results = run_all([create_cmd(n) for n in serial_names], width=1)
        bad += failures(results)
        deploy_serial, results = run_all([deploy_cmd(n) for n in serial_names], width=1)
        bad += failures(results)
        print("%d creates at once" % args.creates, flush=True)
        create_wall, results = run_all([create_cmd(n) for n in names])
        bad += failures(results)
        print("%d deploys at once" % args.deploys, flush=True)
        deploy_wall, results = run_all([deploy_cmd(n) for n in names[:args.deploys]])
        bad += failures(results)
        unhealthy = [n for n in names[:args.deploys] if not healthy(n)]
        print("\nconcurrency (2 cores; each operation is a whole playbook run)")
        line("create (serial baseline)", args.serial, create_serial, create_serial / args.serial)
        line("create, all at once", args.creates, create_wall, create_serial / args.serial)
        line("deploy (serial baseline)", args.serial, deploy_serial, deploy_serial / args.serial)
        line("deploy, all at once", args.deploys, deploy_wall, deploy_serial / args.serial)
        print("  failed processes: %d; deployed sites not healthy: %s" % (len(bad), unhealthy or "none"))
    finally:
        if not args.keep:
            print("cleaning up ...", flush=True)
            _wall, results = run_all([("delete", n, "--yes") for n in everything], width=4)
            failures(results)
    if bad:
        sys.exit(1)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Benchmark: one pipeline run of a one-line test stage through ``lxdctl test`` (CLI -> runner ->
playbook ``pipeline_run`` -> role ``pipeline`` -> modules), next to a raw baseline that does the
same work by hand (git clone/archive, ``lxc launch`` of the runtime image with the same limits,
``lxc file push``, ``lxc exec`` of the unpack and the line, ``lxc delete``).

    python bench/bench_pipeline.py [--rounds 5] [--keep]

It creates the project ``bench-pipe`` (python, no database, a local git repository) and deletes
it afterwards, prints each measurement, then the medians and the ratio lxdctl / raw.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "samples", "python-hello")
LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
NAME = "bench-pipe"
RAW = "bench-pipe-raw"
PIPELINE = "limits: {cpu: 1, memory: 256MiB, processes: 64}\ntest:\n  script: [echo bench-ok]\n"


def sh(*argv, check=True, cwd=None):
    proc = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, stdin=subprocess.DEVNULL)
    if check and proc.returncode != 0:
        raise SystemExit("%s failed: %s %s" % (" ".join(argv), proc.stdout, proc.stderr))
    return proc


def lxdctl_run():
    started = time.monotonic()
    sh(LXDCTL, "test", NAME, "--quiet")
    return time.monotonic() - started


def raw_run(repo, work):
    started = time.monotonic()
    clone = os.path.join(work, "clone")
    shutil.rmtree(clone, ignore_errors=True)
    sh("git", "clone", "--quiet", "--no-checkout", "--single-branch", "--branch", "main", "--", repo, clone)
    archive = os.path.join(work, "source.tar")
    sh("git", "-C", clone, "archive", "--format=tar", "-o", archive, "HEAD")
    sh("lxc", "launch", "lxdctl-python", RAW, "--ephemeral", "-p", "lxdctl", "-c", "limits.cpu=1",
       "-c", "limits.memory=256MiB", "-c", "limits.processes=64")
    sh("lxc", "file", "push", archive, RAW + "/root/source.tar")
    sh("lxc", "exec", RAW, "--", "sh", "-c", "mkdir -p /workspace && tar -xf /root/source.tar -C /workspace")
    out = sh("lxc", "exec", RAW, "--cwd", "/workspace", "--", "sh", "-c", "echo bench-ok").stdout
    assert "bench-ok" in out
    sh("lxc", "delete", "--force", RAW)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the project afterwards")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-pipe-")
    repo = os.path.join(work, "app")
    shutil.copytree(SAMPLE, repo)
    with open(os.path.join(repo, ".lxdctl.yml"), "w") as handle:
        handle.write(PIPELINE)
    sh("git", "init", "-q", "-b", "main", repo)
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.email=b@lxdctl.test", "-c", "user.name=bench", "commit", "-qm", "bench", cwd=repo)
    sh(LXDCTL, "delete", NAME, "--yes", check=False)
    sh("lxc", "delete", "--force", RAW, check=False)
    sh(LXDCTL, "create", NAME, "--runtime", "python", "--port", "8000", "--git", repo)
    try:
        sh(LXDCTL, "pipeline", "create", NAME)
        ours, raw = [], []
        for i in range(args.rounds):
            ours.append(lxdctl_run())
            raw.append(raw_run(repo, work))
            print("round %d: lxdctl test %.2f s, raw %.2f s" % (i + 1, ours[-1], raw[-1]), flush=True)
        a, b = statistics.median(ours), statistics.median(raw)
        print("median: lxdctl test %.2f s, raw baseline %.2f s, ratio %.2f" % (a, b, a / b))
    finally:
        if not args.keep:
            sh(LXDCTL, "delete", NAME, "--yes", check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

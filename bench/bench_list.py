#!/usr/bin/env python3
"""Listing 1000 projects: StateStore.list_projects() next to a raw ``sqlite3 -json`` SELECT.

Fills a temporary SQLite store with 1000 projects, then times (medians over --runs):

* store:  ``StateStore.open()`` + ``list_projects()`` + ``json.dumps``, in one fresh Python
          process each time (what ``lxdctl list --output json`` pays for the state part:
          interpreter start, imports, connect, one SELECT);
* in-process: ``list_projects()`` alone on an open store;
* command: ``lxdctl list --output json`` itself, pointed at that store (LXDCTL_DATABASE_URL);
* raw:    ``sqlite3 -json DB "SELECT <same columns> FROM projects ORDER BY name"``.

and prints both with the ratio store / raw.  Target for ``lxdctl list``: 0.3 s in total.

    python bench/bench_list.py [--projects 1000] [--runs 15]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "cli"))

from lxdctl.collection import collections_path, module_utils  # noqa: E402

_state = module_utils("_state")

CHILD = r"""
import json, sys
sys.path.insert(0, %(path)r)
from ansible_collections.lxdctl.platform.plugins.module_utils._state import StateStore
store = StateStore.open(%(url)r, key_file=%(key)r)
rows = store.list_projects()
store.close()
sys.stdout.write(json.dumps(rows))
"""


def fill(url, key, count):
    with _state.StateStore.open(url, key_file=key) as store:
        with store.transaction():
            for i in range(count):
                store.upsert_project(
                    "bench-%04d" % i, status="running" if i % 3 else "stopped", runtime=("node", "python", "go")[i % 3],
                    port=3000 + i % 1000, domain="bench-%04d.example.com" % i,
                    address="10.77.%d.%d" % (i // 250, i % 250 + 2), container_name="lxdctl-bench-%04d" % i,
                    db_type="postgres", cache_type="redis", spec={"db": "postgres", "cache": "redis"})


def timed(func, runs):
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        func()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    if not shutil.which("sqlite3"):
        sys.exit("sqlite3 (the CLI) is needed for the raw baseline: apt-get install sqlite3")

    workdir = tempfile.mkdtemp(prefix="lxdctl-bench-list-")
    try:
        db = os.path.join(workdir, "state", "state.db")
        url = "sqlite:///" + db
        key = os.path.join(workdir, "keys", "state.key")
        fill(url, key, args.projects)
        query = "SELECT %s FROM projects ORDER BY name" % ", ".join(_state.PROJECT_COLUMNS)
        child = CHILD % {"path": collections_path(), "url": url, "key": key}

        def store_process():
            out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True).stdout
            assert len(json.loads(out)) == args.projects

        lxdctl = os.path.join(os.path.dirname(sys.executable), "lxdctl")
        cli_env = dict(os.environ, LXDCTL_DATABASE_URL=url, LXDCTL_STATE_KEY_FILE=key)

        def cli_process():
            out = subprocess.run([lxdctl, "list", "--output", "json"], capture_output=True, text=True, check=True,
                                 env=cli_env).stdout
            assert len(json.loads(out)) == args.projects

        def raw_process():
            out = subprocess.run(["sqlite3", "-json", db, query], capture_output=True, text=True, check=True).stdout
            assert len(json.loads(out)) == args.projects

        with _state.StateStore.open(url, key_file=key) as store:
            in_process = timed(lambda: store.list_projects(), args.runs)
        store_time = timed(store_process, args.runs)
        raw_time = timed(raw_process, args.runs)
        cli_time = timed(cli_process, args.runs)
        print("projects: %d, runs: %d (medians)" % (args.projects, args.runs))
        print("store  (python: open + list_projects + json): %.4f s" % store_time)
        print("  of which list_projects() in process:        %.4f s" % in_process)
        print("raw    (sqlite3 -json SELECT):                %.4f s" % raw_time)
        print("lxdctl list --output json (the command):      %.4f s" % cli_time)
        print("ratio store / raw: %.2f, command / raw: %.2f" % (store_time / raw_time, cli_time / raw_time))
        print("target for lxdctl list: <= 0.300 s -> %s" % ("met" if cli_time <= 0.3 else "NOT met"))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

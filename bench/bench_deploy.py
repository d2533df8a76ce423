#!/usr/bin/env python3
"""Benchmark: a blue-green deploy of the python sample from a local git repository, and a
rollback, through ``lxdctl deploy`` - next to a raw baseline that does the same work by hand
(git clone/archive, lxc copy/file push/exec, a health poll, an nginx site written and reloaded).

    python bench/bench_deploy.py [--rounds 5] [--keep]

It creates the project ``bench-dep`` (python, no database) and deletes it afterwards, prints
each measurement and then the medians and the ratio lxdctl / raw.  Targets (issue 5): a
median deploy of 10 s or less and a rollback of 2 s or less.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SAMPLE = os.path.join(ROOT, "samples", "python-hello")
LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
NAME = "bench-dep"
DOMAIN = "%s.lxdctl.test" % NAME
RAW_SITE = "/etc/nginx/lxdctl-sites/bench-dep-raw.conf"
RAW_DOMAIN = "bench-dep-raw.lxdctl.test"
RAW_PORT = 4100


def sh(*argv, check=True, cwd=None, input=None):
    proc = subprocess.run(list(argv), capture_output=True, text=True, cwd=cwd, input=input)
    if check and proc.returncode != 0:
        raise SystemExit("%s failed: %s %s" % (" ".join(argv), proc.stdout, proc.stderr))
    return proc


def get(host, path="/", timeout=3):
    req = urllib.request.Request("http://10.77.0.1" + path, headers={"Host": host})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.read().decode().strip()


def commit(repo, message):
    with open(os.path.join(repo, "CHANGES"), "a") as handle:
        handle.write(message + "\n")
    sh("git", "add", "-A", cwd=repo)
    sh("git", "-c", "user.email=b@lxdctl.test", "-c", "user.name=bench", "commit", "-qm", message, cwd=repo)


def timed(func, *args):
    started = time.monotonic()
    func(*args)
    return time.monotonic() - started


# --- lxdctl ------------------------------------------------------------------------------
def lxdctl(*args):
    proc = subprocess.run([LXDCTL] + list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit("lxdctl %s failed:\n%s%s" % (" ".join(args), proc.stdout, proc.stderr))
    return proc


# --- the raw baseline --------------------------------------------------------------------
class Raw:
    """The same blue-green work by hand, in the containers lxdctl made (ports 4100/4101)."""

    def __init__(self, repo):
        self.repo = repo
        self.containers = ["lxdctl-%s" % NAME, "lxdctl-%s-raw" % NAME]
        self.live = None  # (container, release)
        self.previous = None
        self.n = 0

    def address(self, container):
        out = sh("lxc", "list", "--format", "csv", "-c", "4", "^%s$" % container).stdout
        return out.split(" ")[0].strip()

    def nginx_to(self, address, port):
        conf = ("upstream bench_dep_raw {\n    server %s:%d;\n}\nserver {\n    listen 80;\n    server_name %s;\n"
                "    location / {\n        proxy_pass http://bench_dep_raw;\n    }\n}\n" % (address, port, RAW_DOMAIN))
        with open(RAW_SITE + ".tmp", "w") as handle:
            handle.write(conf)
        os.replace(RAW_SITE + ".tmp", RAW_SITE)
        sh("nginx", "-t")
        sh("nginx", "-s", "reload")

    def start(self, container, release):
        unit = "raw-%s" % release
        sh("lxc", "exec", container, "--", "systemd-run", "--quiet", "--unit", unit, "--uid", "app",
           "--working-directory", "/srv/raw/%s" % release, "-E", "PORT=%d" % RAW_PORT, "-E", "LXDCTL_RELEASE=%s" % release,
           "python3", "app.py")
        address = self.address(container)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen("http://%s:%d/health" % (address, RAW_PORT), timeout=1):
                    break
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline:
                    raise SystemExit("raw release %s did not start" % release)
                time.sleep(0.05)
        self.nginx_to(address, RAW_PORT)

    def stop(self, container, release):
        sh("lxc", "exec", container, "--", "systemctl", "stop", "raw-%s" % release, check=False)

    def deploy(self):
        self.n += 1
        release = "r%d" % self.n
        target = self.containers[self.n % 2]
        work = tempfile.mkdtemp(prefix="bench-raw-")
        try:
            sh("git", "clone", "--quiet", "--no-checkout", "--", self.repo, work + "/clone")
            sh("git", "archive", "--format=tar", "-o", work + "/rel.tar", "HEAD", cwd=work + "/clone")
            if sh("lxc", "info", target, check=False).returncode != 0:
                sh("lxc", "copy", self.containers[0], target)
            if "RUNNING" not in sh("lxc", "list", "--format", "csv", "-c", "s", "^%s$" % target).stdout:
                sh("lxc", "start", target)
                while sh("lxc", "exec", target, "--", "systemctl", "is-system-running", check=False).stdout.strip() \
                        not in ("running", "degraded"):
                    time.sleep(0.2)
            sh("lxc", "file", "push", work + "/rel.tar", "%s/tmp/rel.tar" % target)
            sh("lxc", "exec", target, "--", "sh", "-c",
               "mkdir -p /srv/raw/%s && tar -xf /tmp/rel.tar -C /srv/raw/%s && chown -R app: /srv/raw" % (release, release))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        self.start(target, release)
        if self.live:
            self.stop(*self.live)
        self.previous, self.live = self.live, (target, release)

    def rollback(self):
        container, release = self.previous
        self.start(container, release)
        self.stop(*self.live)
        self.previous, self.live = self.live, (container, release)

    def cleanup(self):
        for container, release in filter(None, (self.live, self.previous)):
            self.stop(container, release)
        sh("lxc", "delete", "--force", self.containers[1], check=False)
        if os.path.exists(RAW_SITE):
            os.unlink(RAW_SITE)
            sh("nginx", "-s", "reload", check=False)


def median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the project afterwards")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="bench-dep-")
    repo = os.path.join(work, "python-hello")
    shutil.copytree(SAMPLE, repo)
    sh("git", "init", "-q", "-b", "main", cwd=repo)
    commit(repo, "initial")
    lxdctl("delete", NAME, "--yes") if sh(LXDCTL, "status", NAME, check=False).returncode == 0 else None
    sh("lxc", "delete", "--force", "lxdctl-%s-green" % NAME, check=False)
    print("creating project %s ..." % NAME, flush=True)
    lxdctl("create", NAME, "--runtime", "python", "--git", repo)
    raw = Raw(repo)
    results = {"lxdctl deploy": [], "lxdctl rollback": [], "raw deploy": [], "raw rollback": []}
    try:
        lxdctl("deploy", NAME)  # v1, standard: the first release serves
        raw.deploy()
        for i in range(args.rounds):
            commit(repo, "round %d" % i)
            results["lxdctl deploy"].append(timed(lxdctl, "deploy", NAME, "--blue-green"))
            after_deploy = get(DOMAIN)
            results["lxdctl rollback"].append(timed(lxdctl, "deploy", NAME, "--rollback"))
            after_rollback = get(DOMAIN)
            # put the new release back so that the next round deploys over it
            lxdctl("deploy", NAME, "--rollback", "--to", after_deploy.split()[-1])
            results["raw deploy"].append(timed(raw.deploy))
            results["raw rollback"].append(timed(raw.rollback))
            raw.rollback()
            print("round %d: lxdctl deploy %.2fs (%s), rollback %.2fs (%s); raw deploy %.2fs, rollback %.2fs" % (
                i + 1, results["lxdctl deploy"][-1], after_deploy, results["lxdctl rollback"][-1], after_rollback,
                results["raw deploy"][-1], results["raw rollback"][-1]), flush=True)
    finally:
        raw.cleanup()
        if not args.keep:
            lxdctl("delete", NAME, "--yes")
            sh("lxc", "delete", "--force", "lxdctl-%s-green" % NAME, check=False)
        shutil.rmtree(work, ignore_errors=True)
    print()
    print("%-18s %10s %10s %8s %s" % ("", "lxdctl", "raw", "ratio", "target"))
    for what, target in (("deploy", 10.0), ("rollback", 2.0)):
        ours, base = median(results["lxdctl " + what]), median(results["raw " + what])
        print("%-18s %9.2fs %9.2fs %8.2f <= %.0fs %s" % ("blue-green " + what if what == "deploy" else what, ours, base,
                                                        ours / base, target, "met" if ours <= target else "NOT met"))
    print("load average: %s" % " ".join(open("/proc/loadavg").read().split()[:3]))


if __name__ == "__main__":
    main()

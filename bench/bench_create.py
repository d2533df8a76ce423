#!/usr/bin/env python3
"""Benchmark: ``lxdctl create`` (container, PostgreSQL, Redis, DNS, nginx, env file) next to a
raw baseline that does the same steps by hand with lxc, psql, redis-cli, curl and nginx.

    python bench/bench_create.py [--rounds 3] [--runtime python]

Each round creates the project ``bench-create`` with lxdctl and ``bench-create-raw`` by hand,
timing each, then removes both (not timed).  Prints every measurement, both medians and the
ratio lxdctl / raw.  Target (issue 4): a ratio of 2.5 or less on a btrfs pool.
"""
import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time

LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
NAME = "bench-create"
RAW = "bench-create-raw"
RAW_SQL = "p_bench_create_raw"
RAW_SITE = "/etc/nginx/lxdctl-sites/%s.conf" % RAW


def sh(*argv, check=True, env=None, input=None):
    proc = subprocess.run(list(argv), capture_output=True, text=True, env=dict(os.environ, **(env or {})), input=input)
    if check and proc.returncode != 0:
        raise SystemExit("%s failed: %s%s" % (argv[0], proc.stdout, proc.stderr))
    return proc


def config():
    with open(os.environ.get("LXDCTL_CONFIG", "/etc/lxdctl/platform.json")) as handle:
        return json.load(handle)


class Raw:
    """The same project by hand: what lxdctl create does, without Ansible or the state store."""

    def __init__(self, cfg, runtime):
        self.cfg = cfg
        self.runtime = runtime
        self.zone = cfg["dns"]["default_zone"]
        self.domain = "%s.%s" % (RAW, self.zone)

    def psql(self, sql, check=True):
        pg = self.cfg["postgres"]
        return sh("psql", "-h", pg["host"], "-p", str(pg["port"]), "-U", pg["admin_user"], "-d", "postgres", "-qtAc",
                  sql, env={"PGPASSWORD": pg["admin_password"]}, check=check)

    def redis(self, *args):
        rd = self.cfg["redis"]
        return sh("redis-cli", "-h", rd["host"], "-p", str(rd["port"]), "--user", rd["admin_user"], "--pass",
                  rd["admin_password"], "--no-auth-warning", *args)

    def pdns(self, changetype, records=()):
        pd = self.cfg["pdns"]
        rrset = {"name": self.domain + ".", "type": "A", "ttl": 300, "changetype": changetype,
                 "records": [{"content": r, "disabled": False} for r in records]}
        sh("curl", "-sS", "--fail", "-X", "PATCH", "-H", "X-API-Key: " + pd["api_key"], "-H",
           "Content-Type: application/json", "--data", json.dumps({"rrsets": [rrset]}),
           "%s/api/v1/servers/%s/zones/%s." % (pd["api_url"], pd.get("server_id", "localhost"), self.zone))

    def create(self):
        container = "lxdctl-" + RAW
        password = secrets.token_urlsafe(24)
        redis_password = secrets.token_urlsafe(24)
        self.psql("CREATE ROLE %s LOGIN PASSWORD '%s' NOSUPERUSER NOCREATEDB NOCREATEROLE CONNECTION LIMIT 20"
                  % (RAW_SQL, password))
        self.psql("CREATE DATABASE %s OWNER %s" % (RAW_SQL, RAW_SQL))
        self.psql("REVOKE CONNECT, TEMPORARY ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO %s"
                  % (RAW_SQL, RAW_SQL, RAW_SQL))
        self.redis("ACL", "SETUSER", "p-" + RAW, "reset", "on", ">" + redis_password, "~%s:*" % RAW,
                   "&%s:*" % RAW, "+@all", "-@dangerous")
        lxd = self.cfg["lxd"]
        sh("lxc", "launch", lxd["images"][self.runtime], container, "-p", lxd["profile"],
           "-c", "user.lxdctl.project=" + RAW, "-c", "user.lxdctl.runtime=" + self.runtime)
        address = None
        deadline = time.monotonic() + 90
        while not address:
            out = sh("lxc", "list", "--format", "csv", "-c", "4", "^%s$" % container).stdout.strip()
            address = out.split(" ")[0] if out else None
            if not address:
                if time.monotonic() > deadline:
                    raise SystemExit("no address for %s" % container)
                time.sleep(0.1)
        sh("lxc", "exec", container, "--", "sh", "-c",
           "id -u app >/dev/null 2>&1 || useradd --system --user-group --create-home --home-dir /srv/app app;"
           " mkdir -p /etc/lxdctl")
        tenant = self.cfg["postgres"]["tenant_host"]
        env = ("DATABASE_URL='postgresql://%s:%s@%s:5432/%s'\nREDIS_URL='redis://p-%s:%s@%s:6379/0'\nPORT='3000'\n"
               % (RAW_SQL, password, tenant, RAW_SQL, RAW, redis_password, tenant))
        with tempfile.NamedTemporaryFile("w", delete=False) as handle:
            handle.write(env)
        try:
            sh("lxc", "file", "push", "--uid", "0", "--mode", "0600", handle.name, container + "/etc/lxdctl/app.env")
        finally:
            os.unlink(handle.name)
        sh("lxc", "exec", container, "--", "chown", "app:app", "/etc/lxdctl/app.env")
        self.pdns("REPLACE", [self.cfg["public_address"]])
        with open(RAW_SITE + ".tmp", "w") as handle:
            handle.write("upstream %s {\n    server %s:3000;\n}\nserver {\n    listen 80;\n    server_name %s;\n"
                         "    location / {\n        proxy_pass http://%s;\n    }\n}\n"
                         % (RAW.replace("-", "_"), address, self.domain, RAW.replace("-", "_")))
        os.replace(RAW_SITE + ".tmp", RAW_SITE)
        sh("nginx", "-t")
        sh("nginx", "-s", "reload")

    def destroy(self):
        sh("lxc", "delete", "--force", "lxdctl-" + RAW, check=False)
        self.psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % RAW_SQL, check=False)
        self.psql("DROP ROLE IF EXISTS %s" % RAW_SQL, check=False)
        self.redis("ACL", "DELUSER", "p-" + RAW)
        self.pdns("DELETE")
        if os.path.exists(RAW_SITE):
            os.unlink(RAW_SITE)
            sh("nginx", "-s", "reload")


def lxdctl(*args):
    proc = subprocess.run([LXDCTL] + list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit("lxdctl %s failed:\n%s%s" % (" ".join(args), proc.stdout, proc.stderr))
    return proc


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runtime", default="python", choices=["python", "node", "go"])
    args = parser.parse_args()
    cfg = config()
    raw = Raw(cfg, args.runtime)
    pools = dict(line.split(",")[:2] for line in sh("lxc", "storage", "list", "--format", "csv").stdout.splitlines())
    print("pool %s (%s), runtime %s, %d rounds" % (cfg["lxd"]["pool"], pools.get(cfg["lxd"]["pool"], "?"), args.runtime,
                                                  args.rounds))
    subprocess.run([LXDCTL, "delete", NAME, "--yes"], capture_output=True, stdin=subprocess.DEVNULL)
    raw.destroy()
    ours, theirs = [], []
    try:
        for n in range(1, args.rounds + 1):
            started = time.monotonic()
            lxdctl("create", NAME, "--db", "postgres", "--cache", "redis", "--runtime", args.runtime)
            ours.append(time.monotonic() - started)
            started = time.monotonic()
            raw.create()
            theirs.append(time.monotonic() - started)
            print("round %d: lxdctl create %.2f s, raw %.2f s" % (n, ours[-1], theirs[-1]))
            lxdctl("delete", NAME, "--yes")
            raw.destroy()
    finally:
        subprocess.run([LXDCTL, "delete", NAME, "--yes"], capture_output=True, stdin=subprocess.DEVNULL)
        raw.destroy()
    mine, base = statistics.median(ours), statistics.median(theirs)
    print("median: lxdctl create %.2f s, raw baseline %.2f s, ratio %.2f (target <= 2.5)" % (mine, base, mine / base))


if __name__ == "__main__":
    main()

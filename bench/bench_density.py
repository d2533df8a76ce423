#!/usr/bin/env python3
"""Benchmark: how many idle projects one host holds, and what each costs.

    python bench/bench_density.py [--count 50] [--prefix bench-dens] [--runtime python]
    python bench/bench_density.py --count 1000          # the issue's target; hours, not minutes
    python bench/bench_density.py --count 1000 --parallel 3   # the same, sooner; times are among 3
    python bench/bench_density.py --count 1000 --parallel 2 --minutes 60   # as far as an hour gets

Creates projects ``<prefix>-0001`` … up to ``--count``, each with a container, a PostgreSQL
database, a Redis ACL user, a DNS record and an nginx site (``lxdctl create --db postgres
--cache redis``), one after another.  Prints:

- time per create by decile of the count (median and max), beside the first create's time
  (the raw baseline: an empty host) and the ratio;
- memory per idle project: the host's MemAvailable drop divided by the count, and the mean
  per-container memory LXD reports;
- ``lxdctl list`` wall time (median of 5) and the API's ``GET /api/projects`` latency (p50/p99
  of 50 sequential requests to ``lxdctl serve --workers 0``) at 10, 100 and 1000 projects, as
  far as reached, beside ``sqlite3 -json`` on the same state (raw baseline) and the ratio;
- the host limits that bound density, with their use at the end (DHCP range of the bridge,
  the inotify instances and kernel keys of the containers' shared uid, memory, pool space,
  pids), and, if the count is not reached, the limit that was hit first, named from the
  failure and the limits at that moment.  No create starts once MemAvailable is below 5% of
  the memory (1 GiB at least): the OOM killer would pick the platform's daemons too, so the
  limit is then memory.

Everything it made is deleted at the end (``--keep`` keeps it), also after Ctrl-C.
"""
import argparse
import concurrent.futures
import http.client
import ipaddress
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import threading
import time

LXDCTL = os.path.join(os.path.dirname(sys.executable), "lxdctl")
STATE_DB = "/var/lib/lxdctl/state/state.db"
CHECKPOINTS = (10, 100, 1000)


def sh(*argv, check=False, timeout=900, env=None):
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout,
                          env=dict(os.environ, **(env or {})), stdin=subprocess.DEVNULL, check=check)


def config():
    with open(os.environ.get("LXDCTL_CONFIG", "/etc/lxdctl/platform.json")) as handle:
        return json.load(handle)


def meminfo(key="MemAvailable"):
    with open("/proc/meminfo") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


# --- the limits that bound density ------------------------------------------------------------
def container_uid():
    """The host uid the containers' root maps to (they share one idmap range by default)."""
    try:
        with open("/etc/subuid") as handle:
            for line in handle:
                user, start, _count = line.strip().split(":")
                if user == "root":
                    return int(start)
    except (OSError, ValueError):
        pass
    return 100000


def inotify_instances(uid):
    """Inotify instances held by processes of ``uid`` (the kernel counts them per user)."""
    count = 0
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            if os.stat("/proc/" + pid).st_uid != uid:
                continue
            for fd in os.listdir("/proc/%s/fd" % pid):
                try:
                    if os.readlink("/proc/%s/fd/%s" % (pid, fd)) == "anon_inode:inotify":
                        count += 1
                except OSError:
                    pass
        except OSError:
            pass
    return count


def sysctl(name):
    try:
        with open("/proc/sys/" + name.replace(".", "/")) as handle:
            return int(handle.read().split()[0])
    except (OSError, ValueError):
        return 0


def keys_used(uid):
    try:
        with open("/proc/key-users") as handle:
            for line in handle:
                head, _, rest = line.partition(":")
                if int(head) == uid:
                    return int(rest.split()[2].split("/")[0])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def dhcp_range(cfg):
    out = sh("lxc", "network", "get", cfg["lxd"]["network"], "ipv4.dhcp.ranges").stdout.strip()
    if out:
        total = 0
        for part in out.split(","):
            first, last = part.split("-")
            total += int(ipaddress.IPv4Address(last.strip())) - int(ipaddress.IPv4Address(first.strip())) + 1
        return total
    # no explicit range: LXD hands out the whole subnet but the network, broadcast and bridge addresses
    address = sh("lxc", "network", "get", cfg["lxd"]["network"], "ipv4.address").stdout.strip()
    return 2 ** (32 - int(address.split("/")[1])) - 3


def leases(cfg):
    path = "/var/lib/lxd/networks/%s/dnsmasq.leases" % cfg["lxd"]["network"]
    try:
        with open(path) as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return len(json.loads(sh("lxc", "list", "--format", "json").stdout or "[]"))


def pool_space(cfg):
    out = sh("lxc", "storage", "info", cfg["lxd"]["pool"], "--bytes").stdout
    used = re.search(r"space used:\s*\"?(\d+)", out)
    total = re.search(r"total space:\s*\"?(\d+)", out)
    return (int(used.group(1)) if used else 0), (int(total.group(1)) if total else 0)


def limits(cfg):
    """``{name: (used, limit)}`` of every host limit that bounds the number of projects."""
    uid = container_uid()
    pool_used, pool_total = pool_space(cfg)
    mem_total = meminfo("MemTotal")
    return {
        "bridge DHCP addresses (%s)" % cfg["lxd"]["network"]: (leases(cfg), dhcp_range(cfg)),
        "inotify instances of uid %d (fs.inotify.max_user_instances)" % uid:
            (inotify_instances(uid), sysctl("fs.inotify.max_user_instances")),
        "kernel keys of uid %d (kernel.keys.maxkeys)" % uid: (keys_used(uid), sysctl("kernel.keys.maxkeys")),
        "memory (MemTotal - MemAvailable)": (mem_total - meminfo(), mem_total),
        "storage pool %s" % cfg["lxd"]["pool"]: (pool_used, pool_total),
        "pids (kernel.pid_max)": (len([p for p in os.listdir("/proc") if p.isdigit()]), sysctl("kernel.pid_max")),
    }


def container_logs(error):
    """The console and liblxc logs of the container a failed create names: its systemd says
    why it stopped (a container whose PID 1 exits shows only as "did not get an IPv4")."""
    match = re.search(r"Instance (lxdctl-[a-z0-9-]+)", error)
    text = ""
    for log in ("console.log", "lxc.log"):
        try:
            with open("/var/log/lxd/%s/%s" % (match.group(1), log)) as handle:
                text += handle.read()[-20000:]
        except (OSError, AttributeError):
            pass
    return text


def limit_hit(cfg, error):
    """The limit a failed create ran into: named from its error and its container's logs,
    else the fullest limit at that moment if it was nearly used up."""
    if error.startswith("time:"):
        return "none: the run was stopped by --minutes"
    text = (error + "\n" + container_logs(error)).lower()
    uid = container_uid()
    for words, name in ((("inotify", "too many open files"),
                         "fs.inotify.max_user_instances (%d), shared by every container of uid %d: the container's "
                         "systemd could not allocate an inotify object" % (sysctl("fs.inotify.max_user_instances"), uid)),
                        (("disk quota exceeded", "keyring"), "kernel.keys.maxkeys (%d) of uid %d"
                         % (sysctl("kernel.keys.maxkeys"), uid)),
                        (("no free ip", "dhcp range"), "bridge DHCP addresses"),
                        (("disk quota", "no space left"), "storage pool"),
                        (("cannot allocate memory", "out of memory", "below the"), "memory"),
                        (("too many connections", "max_connections"), "PostgreSQL max_connections"),
                        (("max number of clients", "maxclients"), "Redis maxclients")):
        if any(w in text for w in words):
            return name
    now = limits(cfg)
    fullest = max(now, key=lambda k: now[k][0] / float(now[k][1] or 1))
    used, cap = now[fullest]
    if used < 0.9 * cap:  # nothing is near its end: the error is not a density limit
        return "none (the fullest, %s, was at %d of %d): see the error" % (fullest, used, cap)
    return "%s (%d of %d used when the create failed)" % (fullest, used, cap)


# --- latency of list and the API ----------------------------------------------------------------
def timed(argv, rounds=5, env=None):
    times = []
    for _ in range(rounds):
        started = time.monotonic()
        sh(*argv, env=env)
        times.append(time.monotonic() - started)
    return statistics.median(times)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Api:
    """``lxdctl serve --workers 0`` on the real state, with an admin token made for the bench."""

    def __init__(self):
        self.name = "bench-density-%d" % os.getpid()
        out = sh(LXDCTL, "token", "create", self.name, "--role", "admin", "--all-projects")
        self.token = out.stdout.strip()
        self.port = free_port()
        self.proc = subprocess.Popen([LXDCTL, "serve", "--port", str(self.port), "--workers", "0"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                                     env=dict(os.environ, LXDCTL_API_RATE="1000000/1000000",
                                              LXDCTL_API_IP_RATE="1000000/1000000"))
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.1)
        raise SystemExit("lxdctl serve did not start")

    def latency(self, requests=50):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        times = []
        for _ in range(requests):
            started = time.monotonic()
            conn.request("GET", "/api/projects", headers={"Authorization": "Bearer " + self.token})
            resp = conn.getresponse()
            resp.read()
            times.append(time.monotonic() - started)
            if resp.status != 200:
                return None
        times.sort()
        return times[len(times) // 2], times[min(len(times) - 1, int(len(times) * 0.99))]

    def close(self):
        self.proc.terminate()
        self.proc.wait(10)
        sh(LXDCTL, "token", "revoke", self.name)


# --- the run ----------------------------------------------------------------------------------------
def container_memory(prefix):
    listing = json.loads(sh("lxc", "list", "--format", "json", "^lxdctl-%s-" % prefix).stdout or "[]")
    usage = [((i.get("state") or {}).get("memory") or {}).get("usage") or 0 for i in listing]
    return (sum(usage) / len(usage)) if usage else 0


def existing_projects():
    """Names of the projects in the state (one ``lxdctl list``, not a status call per name)."""
    listing = sh(LXDCTL, "list", "--output", "json", check=True)
    return {project["name"] for project in json.loads(listing.stdout or "[]")}


def delete_all(names, width=4):
    """Delete ``names``, ``width`` at a time (deletes of different projects do not contend)."""
    pending, running = list(reversed(names)), []
    while pending or running:
        while pending and len(running) < width:
            name = pending.pop(0)
            running.append((name, subprocess.Popen([LXDCTL, "delete", name, "--yes"], stdin=subprocess.DEVNULL,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)))
        for name, proc in list(running):
            if proc.poll() is not None:
                err = proc.stderr.read()
                if proc.returncode != 0:
                    print("  could not delete %s: %s" % (name, err.strip().splitlines()[-1:]), file=sys.stderr)
                running.remove((name, proc))
        time.sleep(0.2)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=50)
    parser.add_argument("--prefix", default="bench-dens")
    parser.add_argument("--runtime", default="python")
    parser.add_argument("--keep", action="store_true", help="Keep the projects afterwards.")
    parser.add_argument("--minutes", type=float, default=0,
                        help="Start no create after this many minutes (0: no time limit); the report then says "
                             "the run was stopped by time, not by a limit.")
    parser.add_argument("--parallel", type=int, default=1,
                        help="Creates at once (default 1). More fills the host sooner: 1000 projects take about "
                             "2 hours one at a time on 2 cores; each create's time is then its time among N.")
    args = parser.parse_args()
    if args.parallel < 1:
        parser.error("--parallel: must be at least 1, got %d" % args.parallel)
    cfg = config()
    names = ["%s-%04d" % (args.prefix, i) for i in range(1, args.count + 1)]
    delete_all(sorted(set(names) & existing_projects()))  # left by an earlier, interrupted run
    made, times, checkpoints, failure = [], [], {}, None
    mem_before = meminfo()
    start_limits = limits(cfg)
    api = Api()
    print("density: up to %d projects (container + postgres + redis + DNS + nginx), runtime %s"
          % (args.count, args.runtime))
    stop = threading.Event()  # set by the first failed create: no create starts after it

    reserve = max(2 ** 30, meminfo("MemTotal") // 20)  # left to the host: the OOM killer picks daemons too

    def not_started(name, reason):
        """A create refused before it ran (no args): it stops the run like a failed one."""
        stop.set()
        return name, subprocess.CompletedProcess([], 1, "", reason), 0.0

    def create(name):
        if stop.is_set():
            return name, None, 0.0
        if args.minutes and time.monotonic() - run_started > args.minutes * 60:
            return not_started(name, "time: --minutes %g is up (not a limit)" % args.minutes)
        available = meminfo()
        if available < reserve:
            return not_started(name, "memory: MemAvailable %d MiB is below the %d MiB left to the host"
                               % (available // 2 ** 20, reserve // 2 ** 20))
        started = time.monotonic()
        proc = sh(LXDCTL, "create", name, "--runtime", args.runtime, "--db", "postgres", "--cache", "redis")
        if proc.returncode != 0:
            stop.set()
        return name, proc, time.monotonic() - started

    run_started = time.monotonic()
    try:
        # runs of creates (N at once) up to each checkpoint, where the latencies are measured on a quiet host
        bounds = sorted(set([c for c in CHECKPOINTS if c < len(names)] + [len(names)]))
        lo = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=args.parallel) as pool:
            for hi in bounds:
                for name, proc, elapsed in pool.map(create, names[lo:hi]):
                    if proc is None:
                        continue  # not started: an earlier create failed
                    if proc.args:  # started (the time box and the memory reserve refuse before)
                        made.append(name)  # a failed create may have left pieces: delete removes them
                    if proc.returncode != 0:
                        if failure is None:
                            error = (proc.stderr.strip().splitlines() or ["?"])[-1]
                            failure = (len(times) + 1, error, limit_hit(cfg, error))
                        continue
                    times.append(elapsed)
                    print("  %4d  %5.1f s  MemAvailable %6.0f MiB" % (len(times), elapsed, meminfo() / 2 ** 20),
                          flush=True)
                if failure:
                    break
                lo = hi
                if len(times) in CHECKPOINTS:
                    checkpoints[len(times)] = (timed([LXDCTL, "list"]), timed(["sqlite3", "-json", "-readonly", STATE_DB,
                                                                                "SELECT * FROM projects"]), api.latency())
        run_seconds = time.monotonic() - run_started
        time.sleep(10)  # let the last containers settle to idle
        mem_after = meminfo()
        per_container = container_memory(args.prefix)
        final_limits = limits(cfg)
        count = len(times)
        if count not in checkpoints and count:
            checkpoints[count] = (timed([LXDCTL, "list"]), timed(["sqlite3", "-json", "-readonly", STATE_DB,
                                                                  "SELECT * FROM projects"]), api.latency())
    finally:
        api.close()
        if not args.keep:
            print("cleaning up %d projects ..." % len(made), flush=True)
            delete_all(made)
    report(args, times, mem_before, mem_after, per_container, checkpoints, start_limits, final_limits, failure,
           run_seconds)


def report(args, times, mem_before, mem_after, per_container, checkpoints, start_limits, final_limits, failure,
           run_seconds):
    count = len(times)
    print("\nreached %d of %d projects" % (count, args.count))
    if not count:
        return
    print("%d creates in %.0f s, %d at once: %.1f a minute (checkpoint measurements included)"
          % (count, run_seconds, args.parallel, count * 60.0 / run_seconds))
    base = times[0]
    print("\ntime per create as the count grows (baseline: the first create, %.1f s)" % base)
    print("  %-13s %8s %8s %7s" % ("projects", "median", "max", "ratio"))
    step = max(1, count // 10)
    for lo in range(0, count, step):
        chunk = times[lo:lo + step]
        print("  %4d-%-8d %7.1fs %7.1fs %7.2f" % (lo + 1, lo + len(chunk), statistics.median(chunk), max(chunk),
                                                 statistics.median(chunk) / base))
    delta = max(0, mem_before - mem_after)
    print("\nmemory per idle project: %.0f MiB (host MemAvailable dropped %.0f MiB for %d projects); "
          "LXD reports %.0f MiB per container" % (delta / count / 2 ** 20, delta / 2 ** 20, count, per_container / 2 ** 20))
    print("\nlatency at N projects of this bench (the host may hold others)")
    print("  %-6s %12s %16s %7s %20s" % ("N", "lxdctl list", "sqlite3 -json", "ratio", "API p50 / p99"))
    for n in sorted(checkpoints):
        listing, raw, api = checkpoints[n]
        api_text = "%.1f / %.1f ms" % (api[0] * 1000, api[1] * 1000) if api else "failed"
        print("  %-6d %11.3fs %15.3fs %7.1f %20s" % (n, listing, raw, listing / raw if raw else 0, api_text))
    print("\nhost limits (used at the end / limit; per project = the growth during the run / count;"
          " capacity = projects this host would hold at that rate)")
    capacity = {}
    for name, (used, limit) in final_limits.items():
        grew = max(0, used - start_limits.get(name, (0, 0))[0]) / float(count)
        capacity[name] = int(count + (limit - used) / grew) if grew and limit else None
        print("  %-66s %12s / %-12s per project %10.1f  capacity %s"
              % (name, used, limit, grew, capacity[name] if capacity[name] is not None else "-"))
    if failure:
        print("\nstopped at project %d: %s\nlimit hit first: %s" % failure)
    else:
        bounded = {k: v for k, v in capacity.items() if v is not None}
        if bounded:
            first = min(bounded, key=bounded.get)
            print("\nno limit hit at %d; the first one to be hit is %s, at about %d projects" % (count, first, bounded[first]))


if __name__ == "__main__":
    main()

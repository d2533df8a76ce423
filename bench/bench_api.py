#!/usr/bin/env python3
"""Benchmark: the API server with 1000 projects, at 32 concurrent clients (loopback only).

    python bench/bench_api.py [--projects 1000] [--clients 32] [--seconds 10]

A temporary SQLite state gets N projects; ``lxdctl serve --workers 0`` (jobs are queued,
none run: this measures the API, not playbooks) listens on 127.0.0.1.  32 threads, each
with one keep-alive connection, call GET /api/projects and GET /api/projects/:id (a random
project) with an admin token for ``--seconds`` each.  Prints p50, p99 and requests per
second, beside a raw baseline: a bare ``http.server`` (same thread-per-connection model,
keep-alive, TCP_NODELAY) returning the same JSON bytes without routing, auth, rate limits or the store.
Then the acknowledgement time of POST /api/projects (202 with a job id), 50 times.
Then GET /api/projects/:id over HTTPS (``serve --tls-self-signed``, TLS 1.3, keep-alive) beside
the same over plain HTTP, and a remote ``deploy --path DIR`` of a ``--upload-mib`` directory
that click refuses right after the upload (``--canary 0``), beside the same command run
locally: the cost of packing, sending and unpacking the directory.
Targets (issue 8): p99 <= 50 ms; POST acknowledged within 100 ms.
"""
import argparse
import http.client
import http.server
import json
import os
import random
import socket
import socketserver
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc=None):
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            if proc is not None and proc.poll() is not None:
                raise SystemExit("the server exited")
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def load(port, paths, clients, seconds, token=None, ssl_context=None):
    """``clients`` threads on keep-alive connections for ``seconds``: (latencies in s, count, elapsed)."""
    latencies = [[] for _ in range(clients)]
    errors = [0]
    stop = time.monotonic() + seconds
    headers = {"Authorization": "Bearer " + token} if token else {}

    def client(i):
        if ssl_context is not None:
            conn = http.client.HTTPSConnection("127.0.0.1", port, timeout=30, context=ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        rnd = random.Random(i)
        mine = latencies[i]
        while time.monotonic() < stop:
            path = paths(rnd)
            t0 = time.perf_counter()
            conn.request("GET", path, headers=headers)
            resp = conn.getresponse()
            resp.read()
            mine.append(time.perf_counter() - t0)
            if resp.status != 200:
                errors[0] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    flat = sorted(x for lst in latencies for x in lst)
    return flat, errors[0], elapsed


def summary(name, result):
    flat, errors, elapsed = result
    p50 = flat[len(flat) // 2] * 1000
    p99 = flat[min(len(flat) - 1, int(len(flat) * 0.99))] * 1000
    rps = len(flat) / elapsed
    print("  %-34s p50 %7.2f ms  p99 %7.2f ms  %8.0f req/s  (%d requests, %d errors)"
          % (name, p50, p99, rps, len(flat), errors))
    return p50, p99, rps


def raw_baseline(bodies, port):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def setup(self):
            super().setup()
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as lxdctl serve does

        def do_GET(self):
            data = bodies(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 128

    httpd = Server(("127.0.0.1", port), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--projects", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--upload-mib", type=int, default=20)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="lxdctl-bench-api-")
    env = dict(os.environ, LXDCTL_DATABASE_URL="sqlite:///%s/state.db" % tmp, LXDCTL_STATE_KEY_FILE="%s/key" % tmp,
               LXDCTL_LOCAL="1", LXDCTL_API_RATE="1000000/1000000", LXDCTL_API_IP_RATE="1000000/1000000")
    names = ["bench-%04d" % i for i in range(args.projects)]
    code = ("import sys\nfrom lxdctl.collection import module_utils\n"
            "s = module_utils('_state').StateStore.open()\n"
            "with s.transaction():\n"
            "    for n in sys.argv[1:]:\n"
            "        s.upsert_project(n, runtime='python', port=8000, domain=n + '.bench.example', status='running',"
            " address='10.77.0.10', db_type='postgresql', cache_type='redis')\n")
    subprocess.run([sys.executable, "-c", code] + names, env=env, check=True)
    token = subprocess.run([sys.executable, "-m", "lxdctl.main", "token", "create", "bench", "--role", "admin",
                            "--all-projects"], env=env, check=True, capture_output=True, text=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lxdctl.main", "serve", "--port", str(port), "--workers", "0"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        conn = http.client.HTTPConnection("127.0.0.1", port)
        bodies = {}

        def fetch(path):
            conn.request("GET", path, headers={"Authorization": "Bearer " + token})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, data
            return data

        bodies["/api/projects"] = fetch("/api/projects")
        assert json.loads(bodies["/api/projects"])["count"] == args.projects
        for n in names:
            bodies["/api/projects/" + n] = fetch("/api/projects/" + n)
        print("lxdctl API benchmark: %d projects, %d clients, %.0f s per run, loopback"
              % (args.projects, args.clients, args.seconds))
        one = lambda rnd: "/api/projects/" + rnd.choice(names)  # noqa: E731
        every = lambda rnd: "/api/projects"  # noqa: E731
        results = {}
        results["list"] = summary("lxdctl GET /api/projects", load(port, every, args.clients, args.seconds, token))
        results["get"] = summary("lxdctl GET /api/projects/:id", load(port, one, args.clients, args.seconds, token))
        raw_port = free_port()
        httpd = raw_baseline(lambda path: bodies[path], raw_port)
        results["raw_list"] = summary("raw http.server, same list JSON", load(raw_port, every, args.clients,
                                                                              args.seconds))
        results["raw_get"] = summary("raw http.server, same project JSON", load(raw_port, one, args.clients,
                                                                                args.seconds))
        httpd.shutdown()
        print("  ratio lxdctl / raw (p99): list %.2f, get %.2f;  (req/s): list %.2f, get %.2f" % (
            results["list"][1] / results["raw_list"][1], results["get"][1] / results["raw_get"][1],
            results["list"][2] / results["raw_list"][2], results["get"][2] / results["raw_get"][2]))
        acks = []
        for i in range(50):
            body = json.dumps({"name": "ack-%02d" % i, "runtime": "python"})
            t0 = time.perf_counter()
            conn.request("POST", "/api/projects", body=body, headers={"Authorization": "Bearer " + token,
                                                                      "Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            acks.append(time.perf_counter() - t0)
            assert resp.status == 202
        acks.sort()
        print("  POST /api/projects acknowledged (202 + job id): median %.2f ms, max %.2f ms (50 requests; jobs"
              " queued, not run)" % (statistics.median(acks) * 1000, acks[-1] * 1000))
        ok = results["list"][1] <= 50 and results["get"][1] <= 50 and acks[-1] <= 0.1
        print("  targets (p99 <= 50 ms, ack <= 100 ms): %s" % ("met" if ok else "NOT met"))
        tls_and_uploads(env, tmp, token, names, args, results["get"], port)
    finally:
        proc.terminate()
        proc.wait()
        subprocess.run(["rm", "-rf", tmp])


def tls_and_uploads(env, tmp, token, names, args, plain_get, plain_port):
    import ssl

    env = dict(env, LXDCTL_API_TLS_DIR=os.path.join(tmp, "api-tls"))
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "lxdctl.main", "serve", "--port", str(port), "--workers", "0",
                             "--tls-self-signed"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        ctx = ssl.create_default_context(cafile=os.path.join(tmp, "api-tls", "cert.pem"))
        one = lambda rnd: "/api/projects/" + rnd.choice(names)  # noqa: E731
        tls_get = summary("lxdctl GET /api/projects/:id HTTPS", load(port, one, args.clients, args.seconds, token, ctx))
        print("  ratio HTTPS / HTTP (p99): %.2f;  (req/s): %.2f" % (tls_get[1] / plain_get[1], tls_get[2] / plain_get[2]))
    finally:
        proc.terminate()
        proc.wait()
    src = os.path.join(tmp, "upload-src")
    os.makedirs(src)
    for i in range(args.upload_mib):
        with open(os.path.join(src, "blob-%03d.bin" % i), "wb") as handle:
            handle.write(os.urandom(1 << 20))  # random: gzip cannot shrink it, the worst case
    argv = ["deploy", names[0], "--path", src, "--canary", "0"]
    lxdctl = os.path.join(os.path.dirname(sys.executable), "lxdctl")
    remote = dict(env, LXDCTL_SERVER="http://127.0.0.1:%d" % plain_port, LXDCTL_TOKEN=token)
    remote.pop("LXDCTL_LOCAL", None)
    times = {"local": [], "remote": []}
    outputs = {}
    for _ in range(3):
        for kind, run_env in (("local", env), ("remote", remote)):
            t0 = time.perf_counter()
            done = subprocess.run([lxdctl] + argv, env=run_env, capture_output=True, text=True)
            times[kind].append(time.perf_counter() - t0)
            outputs[kind] = (done.returncode, done.stdout, done.stderr)
    assert outputs["local"] == outputs["remote"] and outputs["local"][0] == 2, outputs
    local, remote_s = statistics.median(times["local"]), statistics.median(times["remote"])
    print("  deploy --path of %d MiB refused after the upload: remote %.2f s, local %.2f s, ratio %.2f "
          "(%.0f MiB/s for pack + send + unpack; same output both ways)"
          % (args.upload_mib, remote_s, local, remote_s / local, args.upload_mib / max(remote_s - local, 1e-3)))


if __name__ == "__main__":
    main()

"""nginx_site against the platform's nginx, checked with curl through nginx to real upstreams."""
import datetime
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.support.ansible_module import run_module

pytestmark = pytest.mark.integration

SITE = "it-site-a"
HOST = "it-site-a.lxdctl.test"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Upstream(object):
    """A tiny python http.server on 127.0.0.1 that serves ``index.html`` with a marker."""

    def __init__(self, root, marker):
        self.port = free_port()
        os.makedirs(root, exist_ok=True)
        with open(os.path.join(root, "index.html"), "w") as handle:
            handle.write(marker + "\n")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", root, str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError("upstream on port %d did not start" % self.port)

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def upstreams(tmp_path_factory):
    base = tmp_path_factory.mktemp("it-site-upstreams")
    one = Upstream(str(base / "one"), "it-site upstream one")
    two = Upstream(str(base / "two"), "it-site upstream two")
    yield one, two
    one.stop()
    two.stop()


@pytest.fixture(scope="module")
def nginx_cfg(platform_config):
    return platform_config["nginx"]


def curl(url, host=HOST, port=None, extra=()):
    """(HTTP status, body) of a request to nginx on 127.0.0.1 with the site's Host name."""
    scheme_port = port or (443 if url.startswith("https") else 80)
    cmd = ["curl", "-sS", "--max-time", "10", "--resolve", "%s:%d:127.0.0.1" % (host, scheme_port),
           "-o", "-", "-w", "\n%{http_code}"] + list(extra) + [url]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=30)
    body, _, status = proc.stdout.rpartition("\n")
    return int(status or 0), body


def wait_for(predicate, timeout=10):
    """nginx -s reload is asynchronous: give the new workers a moment."""
    deadline = time.time() + timeout
    while True:
        value = predicate()
        if value or time.time() > deadline:
            return value
        time.sleep(0.3)


def site_args(upstreams, weights=(3, 1), **extra):
    one, two = upstreams
    args = {
        "name": SITE,
        "server_names": [HOST],
        "upstreams": [{"address": one.address, "weight": weights[0]}, {"address": two.address, "weight": weights[1]}],
    }
    args.update(extra)
    return args


def self_signed(directory):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = os.path.join(directory, "site.crt"), os.path.join(directory, "site.key")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    os.chmod(key_path, 0o600)
    return cert_path, key_path


def test_site_lifecycle(upstreams, nginx_cfg, tmp_path):
    path = os.path.join(nginx_cfg["sites_dir"], SITE + ".conf")
    run_module("nginx_site", {"name": SITE, "state": "absent"})
    one, two = upstreams

    check = run_module("nginx_site", site_args(upstreams), check=True, diff=True)
    assert not check.failed, check
    assert check.changed and "weight=3" in check["diff"]["after"] and check["diff"]["before"] == ""
    assert not os.path.exists(path)

    applied = run_module("nginx_site", site_args(upstreams), diff=True)
    assert not applied.failed, applied
    assert applied.changed and applied["reloaded"] and applied["path"] == path
    with open(path) as handle:
        text = handle.read()
    assert "server %s weight=3;" % one.address in text and "server %s weight=1;" % two.address in text
    # Both upstreams answer through nginx (weighted round robin: 3 of 4 requests go to one).
    bodies = wait_for(lambda: [curl("http://%s/" % HOST)[1].strip() for _ in range(8)] if curl("http://%s/" % HOST)[0] == 200 else None)
    assert bodies, "nginx does not serve %s" % HOST
    assert bodies.count("it-site upstream one") == 6 and bodies.count("it-site upstream two") == 2, bodies

    # The ACME challenge location serves the webroot on port 80.
    challenge_dir = os.path.join(nginx_cfg["acme_webroot"], ".well-known", "acme-challenge")
    os.makedirs(challenge_dir, exist_ok=True)
    probe = os.path.join(challenge_dir, "it-site-probe")
    with open(probe, "w") as handle:
        handle.write("it-site-token")
    try:
        assert curl("http://%s/.well-known/acme-challenge/it-site-probe" % HOST) == (200, "it-site-token")
    finally:
        os.unlink(probe)

    again = run_module("nginx_site", site_args(upstreams))
    assert not again.failed and not again.changed, again

    modified = run_module("nginx_site", site_args(upstreams, weights=(1, 1)), diff=True)
    assert not modified.failed and modified.changed, modified
    assert "weight=3" in modified["diff"]["before"] and "weight=3" not in modified["diff"]["after"]
    with open(path) as handle:
        assert "server %s weight=1;" % one.address in handle.read()

    # A broken configuration (certificate files that do not exist) is rolled back.
    with open(path) as handle:
        good = handle.read()
    broken = run_module("nginx_site", site_args(upstreams, weights=(1, 1), tls_certificate=str(tmp_path / "missing.crt"),
                                                tls_certificate_key=str(tmp_path / "missing.key")))
    assert broken.failed
    assert "previous one is back" in broken["msg"] and "missing.crt" in broken["msg"], broken["msg"]
    with open(path) as handle:
        assert handle.read() == good
    assert [f for f in os.listdir(nginx_cfg["sites_dir"]) if f.endswith(".tmp")] == []
    assert subprocess.run(["nginx", "-t"], capture_output=True).returncode == 0
    assert curl("http://%s/" % HOST)[0] == 200

    # TLS with a redirect from http.
    cert, key = self_signed(str(tmp_path))
    tls = run_module("nginx_site", site_args(upstreams, weights=(1, 1), tls_certificate=cert, tls_certificate_key=key))
    assert not tls.failed and tls.changed, tls
    status = wait_for(lambda: curl("https://%s/" % HOST, extra=["--cacert", cert])[0] == 200)
    assert status
    assert curl("https://%s/" % HOST, extra=["--cacert", cert])[1].startswith("it-site upstream")
    assert curl("http://%s/" % HOST)[0] == 301

    check_absent = run_module("nginx_site", {"name": SITE, "state": "absent"}, check=True)
    assert check_absent.changed and os.path.exists(path)

    gone = run_module("nginx_site", {"name": SITE, "state": "absent"})
    assert not gone.failed and gone.changed, gone
    assert not os.path.exists(path)
    assert wait_for(lambda: "it-site upstream" not in curl("http://%s/" % HOST)[1])

    gone_again = run_module("nginx_site", {"name": SITE, "state": "absent"})
    assert not gone_again.failed and not gone_again.changed


def test_site_written_by_a_run_killed_before_the_reload_is_served_after_the_rerun(upstreams, nginx_cfg, tmp_path):
    """SIGKILL of the module between the site write and the reload, then a rerun."""
    one, two = upstreams
    path = os.path.join(nginx_cfg["sites_dir"], SITE + ".conf")
    mark = os.path.join(nginx_cfg["sites_dir"], ".reload-pending")
    real_nginx = subprocess.run(["sh", "-c", "command -v nginx"], capture_output=True, text=True).stdout.strip() or "/usr/sbin/nginx"
    killer = tmp_path / "nginx-killed-at-reload"
    # Checks pass through to the real nginx; the reload kills the module that asked for it.
    killer.write_text('#!/bin/sh\nif [ "$1" = "-s" ]; then kill -9 "$PPID"; exit 1; fi\nexec %s "$@"\n' % real_nginx)
    killer.chmod(0o755)
    answer = lambda: (lambda status, body: (status, body.strip()))(*curl("http://%s/" % HOST))  # noqa: E731
    served = lambda marker: wait_for(lambda: answer() == (200, marker))  # noqa: E731
    only = lambda upstream: {"name": SITE, "server_names": [HOST], "upstreams": [{"address": upstream.address}]}  # noqa: E731
    try:
        assert not run_module("nginx_site", only(one)).failed
        assert served("it-site upstream one")

        killed = run_module("nginx_site", only(two),
                            env={"LXDCTL_NGINX_BINARY": str(killer)})
        assert killed.failed
        with open(path) as handle:
            assert two.address in handle.read()  # written ...
        assert os.path.exists(mark)
        assert answer() == (200, "it-site upstream one")  # ... but not served

        rerun = run_module("nginx_site", only(two))
        assert not rerun.failed, rerun
        assert rerun.changed and rerun["reloaded"]
        assert served("it-site upstream two")
        assert not os.path.exists(mark)
        assert not run_module("nginx_site", only(two)).changed
    finally:
        run_module("nginx_site", {"name": SITE, "state": "absent"})


@pytest.mark.parametrize(
    "bad",
    [
        {"server_names": ["it-site-b.lxdctl.test;"]},
        {"server_names": ["it-site-b.lxdctl.test\nserver_name evil"]},
        {"server_names": ["it-site-b.lxdctl.test}"]},
        {"server_names": ["a" * 64 + ".lxdctl.test"]},
        {"server_names": [".".join(["a" * 60] * 5)]},
        {"upstreams": [{"address": "127.0.0.1:80; include /etc/shadow"}]},
        {"upstreams": [{"address": "127.0.0.1:80\n}"}]},
        {"upstreams": [{"address": "127.0.0.1:80", "weight": 0}]},
        {"tls_certificate": "/etc/x.crt;", "tls_certificate_key": "/etc/x.key"},
        {"name": "It-Site-B"},
        {"name": "it-site-b;rm"},
        {"name": "it-site-b/../../x"},
    ],
)
def test_site_bad_input_writes_nothing(nginx_cfg, bad):
    args = {"name": "it-site-b", "server_names": ["it-site-b.lxdctl.test"], "upstreams": [{"address": "127.0.0.1:9"}]}
    args.update(bad)
    result = run_module("nginx_site", args)
    assert result.failed and result["msg"]
    assert [f for f in os.listdir(nginx_cfg["sites_dir"]) if f.startswith(("it-site-b", "It-Site", ".lxdctl-"))] == []

"""acme_certificate against the platform's pebble: HTTP-01 through nginx, names from PowerDNS.

Verified with openssl and curl against pebble's issuing root (from its management API).
"""
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.support.ansible_module import run_module

pytestmark = pytest.mark.integration

ZONE = "acme-it.lxdctl.test"
NAMES = [ZONE, "www." + ZONE]
SITE = "acme-it"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory):
    root = tmp_path_factory.mktemp("acme-it-upstream")
    (root / "index.html").write_text("acme-it upstream\n")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", "--directory", str(root), str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 30  # nginx's reload is seconds on a busy host
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield "127.0.0.1:%d" % port
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def acme_host(platform_config, upstream):
    """The zone with A records to the host, and an nginx site that serves the challenge webroot."""
    address = platform_config["public_address"]
    zone = run_module("powerdns_zone", {"name": ZONE, "nameservers": ["ns1." + ZONE]})
    assert not zone.failed, zone
    for name in ("@", "www"):
        rec = run_module("powerdns_record", {"zone": ZONE, "name": name, "type": "A", "records": [address]})
        assert not rec.failed, rec
    pdns = platform_config["pdns"]
    answer = subprocess.run(["dig", "+short", "@%s" % pdns.get("dns_address", "127.0.0.1"), "-p", str(pdns.get("dns_port", 5300)),
                             "www." + ZONE, "A"], capture_output=True, text=True, timeout=30).stdout.split()
    assert answer == [address]
    site = run_module("nginx_site", {"name": SITE, "server_names": NAMES, "upstreams": [{"address": upstream}]})
    assert not site.failed, site
    yield upstream
    run_module("nginx_site", {"name": SITE, "state": "absent"})
    run_module("powerdns_zone", {"name": ZONE, "state": "absent"})


@pytest.fixture(scope="module")
def pebble_root(platform_config, tmp_path_factory):
    """Pebble's issuing root, fetched from its management interface with curl."""
    path = str(tmp_path_factory.mktemp("acme-it-root") / "root.pem")
    subprocess.run(["curl", "-sS", "--fail", "--cacert", platform_config["acme"]["ca_bundle"], "-o", path,
                    "https://127.0.0.1:15000/roots/0"], check=True, timeout=30)
    return path


def openssl_text(cert_path):
    return subprocess.run(["openssl", "x509", "-in", cert_path, "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout


def split_chain(cert_path, directory):
    """The leaf and the rest of the chain, as two files."""
    with open(cert_path) as handle:
        blocks = handle.read().split("-----END CERTIFICATE-----")
    pems = [b.strip() + "\n-----END CERTIFICATE-----\n" for b in blocks if "BEGIN CERTIFICATE" in b]
    leaf, rest = os.path.join(directory, "leaf.pem"), os.path.join(directory, "intermediates.pem")
    with open(leaf, "w") as handle:
        handle.write(pems[0])
    with open(rest, "w") as handle:
        handle.write("".join(pems[1:]))
    return leaf, rest


def test_issue_verify_rerun_force(acme_host, pebble_root, platform_config, tmp_path):
    args = {
        "domains": NAMES,
        "cert_path": str(tmp_path / "acme-it.crt"),
        "key_path": str(tmp_path / "acme-it.key"),
        "account_key_path": str(tmp_path / "account.key"),
        "email": "ops@acme-it.lxdctl.test",
    }

    check = run_module("acme_certificate", args, check=True, diff=True)
    assert not check.failed, check
    assert check.changed and "no certificate" in check["reason"]
    assert os.listdir(str(tmp_path)) == []

    issued = run_module("acme_certificate", args, diff=True)
    assert not issued.failed, issued
    assert issued.changed and issued["domains"] == sorted(NAMES)
    assert issued["serial"] and issued["not_after"] and issued["issuer"]
    assert oct(os.stat(args["key_path"]).st_mode & 0o777) == "0o600"
    text = openssl_text(args["cert_path"])
    assert "DNS:%s" % ZONE in text and "DNS:www.%s" % ZONE in text
    leaf, intermediates = split_chain(args["cert_path"], str(tmp_path))
    verify = subprocess.run(["openssl", "verify", "-CAfile", pebble_root, "-untrusted", intermediates, leaf],
                            capture_output=True, text=True)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    # No challenge token is left behind in the webroot.
    challenge_dir = os.path.join(platform_config["nginx"]["acme_webroot"], ".well-known", "acme-challenge")
    assert not os.path.isdir(challenge_dir) or os.listdir(challenge_dir) == []

    # Serve it through nginx and talk TLS to it with pebble's root as the only trust anchor.
    site = run_module("nginx_site", {"name": SITE, "server_names": NAMES, "upstreams": [{"address": acme_host}],
                                     "tls_certificate": args["cert_path"], "tls_certificate_key": args["key_path"]})
    assert not site.failed, site

    def https(name):
        proc = subprocess.run(["curl", "-sS", "--max-time", "10", "--cacert", pebble_root,
                               "--resolve", "%s:443:127.0.0.1" % name, "https://%s/" % name],
                              capture_output=True, text=True, timeout=30)
        return proc.stdout

    deadline = time.time() + 30  # nginx's reload is seconds on a busy host
    while "acme-it upstream" not in https(ZONE) and time.time() < deadline:
        time.sleep(0.3)
    assert "acme-it upstream" in https(ZONE)
    assert "acme-it upstream" in https("www." + ZONE)

    again = run_module("acme_certificate", args)
    assert not again.failed and not again.changed, again
    assert again["serial"] == issued["serial"]

    forced = run_module("acme_certificate", dict(args, force=True))
    assert not forced.failed and forced.changed, forced
    assert forced["serial"] != issued["serial"] and forced["reason"] == "forced"
    assert forced["reloaded"] is True
    # nginx now serves the renewed certificate.
    deadline = time.time() + 30  # nginx's reload is seconds on a busy host
    while served_serial(ZONE) != forced["serial"] and time.time() < deadline:
        time.sleep(0.3)
    assert served_serial(ZONE) == forced["serial"]
    assert "acme-it upstream" in https(ZONE)

    fewer = run_module("acme_certificate", dict(args, domains=[ZONE]), check=True)
    assert fewer.changed and "differ" in fewer["reason"]

    soon = run_module("acme_certificate", dict(args, renew_before_days=100000), check=True)
    assert soon.changed and "expires within" in soon["reason"]


def served_serial(name):
    """The serial (lower-case hex) of the certificate nginx presents for ``name``, via openssl s_client."""
    hello = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:443", "-servername", name],
                           input="", capture_output=True, text=True, timeout=30).stdout
    serial = subprocess.run(["openssl", "x509", "-noout", "-serial"], input=hello, capture_output=True, text=True).stdout
    return serial.strip().partition("=")[2].lower().lstrip("0")


def test_bad_input_is_rejected(tmp_path):
    for bad in ({"domains": ["acme-it.lxdctl.test;x"]}, {"domains": ["a" * 64 + ".lxdctl.test"]},
                {"domains": [ZONE], "email": "a@b\nc"}):
        bad = dict(bad, cert_path=str(tmp_path / "c.crt"), key_path=str(tmp_path / "c.key"),
                   account_key_path=str(tmp_path / "a.key"))
        result = run_module("acme_certificate", bad)
        assert result.failed and result["msg"]
    assert os.listdir(str(tmp_path)) == []

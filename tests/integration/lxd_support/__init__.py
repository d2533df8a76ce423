"""Helpers for the LXD integration tests (lxd_instance, lxd_file, connection, inventory, isolation).

``run_adhoc`` runs any module against any inventory and connection (the shared
``run_module`` only drives localhost); ``https_endpoint`` opens LXD on loopback HTTPS.
"""
import contextlib
import json
import os
import subprocess
import sys
import time

from tests.support.ansible_module import ModuleRun, ansible_env, run_module  # noqa: F401 - re-exported

ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


def _env(extra=None):
    return ansible_env(extra)


def run_adhoc(pattern, module, args, inventory, extra_args=(), check=False, diff=False, env=None, timeout=600):
    """Run ``ansible <pattern> -i <inventory> -m <module> -a <args>``; return ``{host: ModuleRun}``."""
    cmd = [ANSIBLE, pattern, "-i", inventory, "-m", module, "-a", args if isinstance(args, str) else json.dumps(args)]
    cmd += list(extra_args)
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(env), timeout=timeout)
    try:
        report = json.loads(proc.stdout)
        hosts = report["plays"][0]["tasks"][0]["hosts"]
    except (ValueError, IndexError, KeyError):
        raise AssertionError("ansible printed no result (rc=%s)\nstdout:%s\nstderr:%s"
                             % (proc.returncode, proc.stdout, proc.stderr))
    return dict((host, ModuleRun(result)) for host, result in hosts.items())


HTTPS_ADDRESS = "127.0.0.1:8443"


def _lxc(*args, check=True):
    proc = subprocess.run(["lxc"] + list(args), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("lxc %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


@contextlib.contextmanager
def https_endpoint(workdir):
    """LXD on https://127.0.0.1:8443 with a freshly trusted client certificate.

    Sets ``core.https_address`` only when it is unset, and restores it and the trust store after.
    Yields ``dict(url, cert, key)``.
    """
    previous = _lxc("config", "get", "core.https_address").stdout.strip()
    if not previous:
        _lxc("config", "set", "core.https_address", HTTPS_ADDRESS)
    address = previous or HTTPS_ADDRESS
    if address.startswith(("[::]", ":", "0.0.0.0")):
        address = "127.0.0.1:" + address.rsplit(":", 1)[1]
    cert, key = os.path.join(workdir, "client.crt"), os.path.join(workdir, "client.key")
    fingerprint = None
    try:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp384r1",
                        "-nodes", "-keyout", key, "-out", cert, "-days", "1", "-subj", "/CN=lxdctl-it-inst"],
                       check=True, capture_output=True)
        fingerprint = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                                     check=True, capture_output=True, text=True).stdout
        fingerprint = fingerprint.split("=", 1)[1].strip().replace(":", "").lower()
        _lxc("config", "trust", "add", cert)
        deadline = time.time() + 10
        while subprocess.run(["curl", "-sk", "-o", "/dev/null", "https://%s/1.0" % address],
                             timeout=5).returncode != 0:
            assert time.time() < deadline, "LXD does not answer on https://%s" % address
            time.sleep(0.2)
        yield dict(url="https://" + address, cert=cert, key=key)
    finally:
        if fingerprint:
            _lxc("config", "trust", "remove", fingerprint, check=False)
        if not previous:
            _lxc("config", "unset", "core.https_address", check=False)

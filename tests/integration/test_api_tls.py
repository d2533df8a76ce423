"""HTTPS in ``lxdctl serve``: a self-signed certificate (--tls-self-signed) and one given with
--tls-cert/--tls-key; checked with curl --cacert and openssl, and with the remote CLI pinning the
fingerprint or trusting a CA file."""
import base64
import json
import os
import re
import socket
import ssl
import subprocess
import sys

import pytest

from tests.integration.test_api_server import LXDCTL, Server, make_token, run_cli
from lxdctl.api import websocket

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls_env(tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("apitls"))
    env = dict(os.environ)
    for key in ("LXDCTL_SERVER", "LXDCTL_TOKEN", "LXDCTL_LOCAL", "LXDCTL_CA_BUNDLE", "LXDCTL_FINGERPRINT"):
        env.pop(key, None)
    env.update(LXDCTL_DATABASE_URL="sqlite:///%s/state.db" % tmp, LXDCTL_STATE_KEY_FILE="%s/state.key" % tmp,
               XDG_CONFIG_HOME=os.path.join(tmp, ".config"), LXDCTL_API_TLS_DIR=os.path.join(tmp, "api-tls"),
               TMP=tmp, TMPDIR=tmp)
    code = ("from lxdctl.collection import module_utils\n"
            "module_utils('_state').StateStore.open().upsert_project('apitls-one', runtime='python', port=8000,"
            " status='running')\n")
    subprocess.run([sys.executable, "-c", code], env=env, check=True)
    return env, make_token(env, "apitls-admin", "--role", "admin", "--all-projects")


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20"] + list(args), capture_output=True, text=True)


def test_self_signed_https_with_curl_cacert_and_a_pinned_remote_cli(tls_env):
    env, token = tls_env
    srv = Server(env["TMP"], env, args=["--tls-self-signed", "--workers", "0"], scheme="https").start()
    try:
        cert = os.path.join(env["LXDCTL_API_TLS_DIR"], "cert.pem")
        assert os.stat(os.path.join(env["LXDCTL_API_TLS_DIR"], "key.pem")).st_mode & 0o777 == 0o600
        done = curl("-v", "--cacert", cert, "-H", "Authorization: Bearer " + token, srv.url + "/api/me")
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout)["role"] == "admin" and "TLSv1.3" in done.stderr
        assert curl(srv.url + "/api/me").returncode == 60  # not trusted without the CA file
        assert curl("--cacert", cert, "--tls-max", "1.2", srv.url + "/api/me").returncode != 0  # TLS 1.3 only
        plain = curl(srv.url.replace("https:", "http:") + "/api/me")
        assert plain.returncode != 0 or "admin" not in plain.stdout
        # the fingerprint the server printed is the certificate's (openssl says so), and the CLI pins it
        printed = re.search(r"fingerprint (SHA256:[0-9A-F:]+)", srv.log_text()).group(1)
        by_openssl = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                                    capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
        assert printed == "SHA256:" + by_openssl
        local = run_cli(env, "list", "--output", "json")
        pinned = run_cli(dict(env, LXDCTL_SERVER=srv.url, LXDCTL_TOKEN=token, LXDCTL_FINGERPRINT=printed),
                         "list", "--output", "json")
        assert (pinned.returncode, pinned.stdout, pinned.stderr) == (local.returncode, local.stdout, local.stderr)
        wrong = run_cli(dict(env, LXDCTL_SERVER=srv.url, LXDCTL_TOKEN=token, LXDCTL_FINGERPRINT="SHA256:" + "AB" * 32),
                        "list")
        assert wrong.returncode == 1 and "is not the pinned" in wrong.stderr and wrong.stdout == ""
        untrusted = run_cli(dict(env, LXDCTL_SERVER=srv.url, LXDCTL_TOKEN=token), "list")
        assert untrusted.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
        # the settings file works as the environment does
        assert run_cli(env, "config", "set", "fingerprint", "nonsense").returncode == 2
        for key, value in (("server", srv.url), ("token", token), ("ca", cert)):
            assert run_cli(env, "config", "set", key, value).returncode == 0
        assert run_cli(env, "list", "--output", "json").stdout == local.stdout
        shown = json.loads(run_cli(env, "config", "show", "--output", "json").stdout)
        assert shown["ca"] == cert and shown["mode"] == "remote"
        os.unlink(os.path.join(env["XDG_CONFIG_HOME"], "lxdctl", "config.json"))
        # WebSockets work over TLS too: the events of a job (queued, never run: --workers 0, then cancelled)
        auth = ["--cacert", cert, "-H", "Authorization: Bearer " + token, "-H", "Content-Type: application/json"]
        queued = curl(*auth, "-d", json.dumps({"playbook": "noop_wait", "extravars": {
            "noop_wait_seconds": 0, "noop_wait_marker": os.path.join(env["TMP"], "m")}}), srv.url + "/api/jobs")
        job_id = json.loads(queued.stdout)["job_id"]
        assert json.loads(curl(*auth, "-X", "POST", srv.url + "/api/jobs/%d/cancel" % job_id).stdout)["job"][
            "status"] == "cancelled"
        ctx = ssl.create_default_context(cafile=cert)
        sock = ctx.wrap_socket(socket.create_connection(("127.0.0.1", srv.port), timeout=60), server_hostname="127.0.0.1")
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(("GET /api/jobs/%d/events HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer %s\r\n\r\n"
                      % (job_id, key, token)).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, buf = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101")
        last = None
        texts = []
        while last is None or last[1] != websocket.OP_CLOSE:
            frames, buf = websocket.parse_frames(buf)
            for frame in frames:
                if frame[1] == websocket.OP_TEXT:
                    texts.append(json.loads(frame[2]))
                last = frame
            if not frames:
                chunk = sock.recv(65536)
                assert chunk
                buf += chunk
        sock.close()
        assert texts == [{"type": "job", "status": "cancelled", "result": None, "error": "cancelled before it started"}]
    finally:
        srv.stop()
    assert token not in srv.log_text()


def test_given_certificate_checks_the_host_name_and_bad_options_are_refused(tls_env, tmp_path):
    env, token = tls_env
    cert, key = str(tmp_path / "c.pem"), str(tmp_path / "k.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost"], check=True, capture_output=True)
    srv = Server(env["TMP"], env, args=["--tls-cert", cert, "--tls-key", key], scheme="https").start()
    try:
        by_name = srv.url.replace("127.0.0.1", "localhost")
        done = curl("--cacert", cert, "-H", "Authorization: Bearer " + token, by_name + "/api/projects")
        assert done.returncode == 0 and json.loads(done.stdout)["projects"][0]["name"] == "apitls-one"
        remote = dict(env, LXDCTL_TOKEN=token, LXDCTL_CA_BUNDLE=cert)
        assert run_cli(dict(remote, LXDCTL_SERVER=by_name), "list").returncode == 0
        mismatch = run_cli(dict(remote, LXDCTL_SERVER=srv.url), "list")  # the certificate does not name 127.0.0.1
        assert mismatch.returncode == 1 and "CERTIFICATE_VERIFY_FAILED" in mismatch.stderr
    finally:
        srv.stop()
    half = subprocess.run(LXDCTL + ["serve", "--port", "1", "--tls-cert", cert], env=env, capture_output=True, text=True)
    assert half.returncode == 2 and "--tls-key" in half.stderr
    both = subprocess.run(LXDCTL + ["serve", "--port", "1", "--tls-self-signed", "--tls-cert", cert, "--tls-key", key],
                          env=env, capture_output=True, text=True)
    assert both.returncode == 2 and "--tls-self-signed" in both.stderr
    swapped = subprocess.run(LXDCTL + ["serve", "--port", "1", "--tls-cert", key, "--tls-key", cert], env=env,
                             capture_output=True, text=True)
    assert swapped.returncode == 1 and "cannot load the TLS certificate" in swapped.stderr

"""TLS for the API (lxdctl.api.tls): the self-signed certificate, fingerprints, the client's pin."""
import os
import ssl
import subprocess

import pytest

from lxdctl.api import tls


def test_self_signed_certificate_is_made_once_private_and_names_loopback(tmp_path, monkeypatch):
    monkeypatch.setenv("LXDCTL_API_TLS_DIR", str(tmp_path / "api-tls"))
    cert, key = tls.self_signed("127.0.0.1")
    assert os.stat(key).st_mode & 0o777 == 0o600 and os.stat(str(tmp_path / "api-tls")).st_mode & 0o777 == 0o700
    first = open(cert).read()
    assert tls.self_signed("127.0.0.1") == (cert, key) and open(cert).read() == first  # reused, not remade
    text = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-text"], capture_output=True, text=True,
                          check=True).stdout
    assert "IP Address:127.0.0.1" in text and "DNS:localhost" in text
    fingerprint = subprocess.run(["openssl", "x509", "-in", cert, "-noout", "-fingerprint", "-sha256"],
                                 capture_output=True, text=True, check=True).stdout.strip().split("=", 1)[1]
    assert tls.fingerprint_of_pem(cert) == "SHA256:" + fingerprint
    ctx = tls.server_context(cert, key)
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3


def test_fingerprint_forms_and_bad_ones():
    digest = "ab" * 32
    assert tls.normalize_fingerprint("SHA256:" + ":".join(["AB"] * 32)) == digest
    assert tls.normalize_fingerprint(digest.upper()) == digest
    for bad in ("", "SHA256:AB", "zz" * 32, "ab" * 33):
        with pytest.raises(tls.TLSError, match="64 hex digits"):
            tls.normalize_fingerprint(bad)


def test_a_bad_key_pair_is_a_clear_error(tmp_path):
    bogus = tmp_path / "cert.pem"
    bogus.write_text("not a certificate\n")
    with pytest.raises(tls.TLSError, match="cannot load the TLS certificate"):
        tls.server_context(str(bogus), str(bogus))


def test_pinned_client_skips_ca_checks_but_a_ca_client_checks_them():
    pinned = tls.client_context(fingerprint="ab" * 32)
    assert pinned.verify_mode == ssl.CERT_NONE and not pinned.check_hostname
    normal = tls.client_context()
    assert normal.verify_mode == ssl.CERT_REQUIRED and normal.check_hostname

# -*- coding: utf-8 -*-
"""A small ACME v2 (RFC 8555) client: account, order, HTTP-01 through a webroot, finalize, download.

It needs only ``cryptography`` and ``requests``.  Requests are JWS-signed with the account
key (ES256 for an EC P-256 key, RS256 for an RSA key); a ``badNonce`` answer is retried
with the fresh nonce, as RFC 8555 section 6.5 asks.  HTTP-01 tokens are written under
``<webroot>/.well-known/acme-challenge/``, which nginx serves on port 80 for every
lxdctl site (see ``_nginx.render_site``), and removed afterwards.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import datetime
import hashlib
import json
import os
import re
import tempfile
import time

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

try:
    import requests
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    from cryptography.x509.oid import ExtensionOID, NameOID

    HAS_DEPS = True
    DEPS_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_deps() as a readable failure
    HAS_DEPS = False
    DEPS_IMPORT_ERROR = exc

LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
CHALLENGE_DIR = os.path.join(".well-known", "acme-challenge")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{1,256}$")
_BAD_NONCE = "urn:ietf:params:acme:error:badNonce"


def require_deps():
    if not HAS_DEPS:
        raise LxdctlError("The cryptography and requests Python libraries are required: %s" % DEPS_IMPORT_ERROR)


def b64url(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _int_bytes(number, length=None):
    length = length or max(1, (number.bit_length() + 7) // 8)
    return number.to_bytes(length, "big")


# --- keys ------------------------------------------------------------------------------
def generate_key():
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def load_key(path):
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise LxdctlError("Failed to read the key %s: %s" % (path, exc.strerror))
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise LxdctlError("%s is not an unencrypted PEM private key: %s" % (path, exc))
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name != "secp256r1":
        raise LxdctlError("%s: only P-256 EC keys (ES256) or RSA keys (RS256) are supported" % path)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey)):
        raise LxdctlError("%s: only P-256 EC keys (ES256) or RSA keys (RS256) are supported" % path)
    return key


def load_or_create_key(path, create):
    """``(key, created)``; a missing key is generated (and written unless ``create`` is false)."""
    if os.path.exists(path):
        return load_key(path), False
    key = generate_key()
    if create:
        write_file(path, key_to_pem(key), 0o600)
    return key, True


def jwk(key):
    public = key.public_key().public_numbers()
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {"crv": "P-256", "kty": "EC", "x": b64url(_int_bytes(public.x, 32)), "y": b64url(_int_bytes(public.y, 32))}
    return {"e": b64url(_int_bytes(public.e)), "kty": "RSA", "n": b64url(_int_bytes(public.n))}


def jwk_thumbprint(key):
    """RFC 7638: SHA-256 over the required members, sorted, without whitespace."""
    canonical = json.dumps(jwk(key), sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def sign(key, data):
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(data, ec.ECDSA(hashes.SHA256())))
        return "ES256", _int_bytes(r, 32) + _int_bytes(s, 32)
    return "RS256", key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def jws(key, url, nonce, payload, kid=None):
    """A flattened JWS; ``payload=None`` makes a POST-as-GET (empty payload)."""
    alg = "ES256" if isinstance(key, ec.EllipticCurvePrivateKey) else "RS256"
    protected = {"alg": alg, "nonce": nonce, "url": url}
    if kid:
        protected["kid"] = kid
    else:
        protected["jwk"] = jwk(key)
    protected64 = b64url(json.dumps(protected, separators=(",", ":")))
    payload64 = "" if payload is None else b64url(json.dumps(payload, separators=(",", ":")))
    _, signature = sign(key, ("%s.%s" % (protected64, payload64)).encode("ascii"))
    return {"protected": protected64, "payload": payload64, "signature": b64url(signature)}


def make_csr(key, domains):
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    )
    builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# --- certificates on disk --------------------------------------------------------------
def write_file(path, content, mode):
    """Atomic write: temp file in the same directory, fsync, chmod, rename."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        if not os.path.isdir(directory):
            os.makedirs(directory, 0o755)
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".lxdctl-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except (IOError, OSError) as exc:
        raise LxdctlError("Failed to write %s: %s" % (path, exc))


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def cert_info(cert):
    try:
        sans = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        domains = sorted(n.lower() for n in sans.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        domains = []
    return {
        "domains": domains,
        "not_after": _not_after(cert).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "serial": "%x" % cert.serial_number,
        "issuer": cert.issuer.rfc4514_string(),
    }


def load_cert(path):
    """The first certificate of a PEM file, or ``None`` when the file is missing or unreadable."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
        return x509.load_pem_x509_certificate(data)
    except (IOError, OSError, ValueError):
        return None


def _public_bytes(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def renewal_reason(cert_path, key_path, domains, renew_before_days, force, now=None):
    """Why a certificate must be issued, or ``None`` when the existing one is good."""
    if force:
        return "forced"
    cert = load_cert(cert_path)
    if cert is None:
        return "no certificate at %s" % cert_path
    if not os.path.exists(key_path):
        return "no key at %s" % key_path
    key = load_key(key_path)
    if _public_bytes(key.public_key()) != _public_bytes(cert.public_key()):
        return "the certificate does not belong to the key %s" % key_path
    info = cert_info(cert)
    if info["domains"] != sorted(set(domains)):
        return "the certificate's domains %s differ from %s" % (", ".join(info["domains"]), ", ".join(sorted(set(domains))))
    now = now or datetime.datetime.now(datetime.timezone.utc)
    left = _not_after(cert) - now
    if left < datetime.timedelta(days=renew_before_days):
        return "the certificate expires within %d days (%s)" % (renew_before_days, info["not_after"])
    return None


# --- the protocol ----------------------------------------------------------------------
class AcmeClient(object):
    def __init__(self, directory_url, account_key, verify=True, timeout=30, poll_timeout=180):
        require_deps()
        self.key = account_key
        self.timeout = timeout
        self.poll_timeout = poll_timeout
        self.kid = None
        self._nonce = None
        # Passed on every call: a session-level verify loses to REQUESTS_CA_BUNDLE in the environment.
        self.verify = verify
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "lxdctl-acme/0.1"
        try:
            resp = self.session.get(directory_url, timeout=timeout, verify=self.verify)
            resp.raise_for_status()
            self.directory = resp.json()
        except (requests.RequestException, ValueError) as exc:
            raise LxdctlError("Failed to read the ACME directory %s: %s" % (directory_url, exc))
        for needed in ("newNonce", "newAccount", "newOrder"):
            if needed not in self.directory:
                raise LxdctlError("The ACME directory %s has no %s" % (directory_url, needed))

    def _new_nonce(self):
        if self._nonce:
            nonce, self._nonce = self._nonce, None
            return nonce
        try:
            resp = self.session.head(self.directory["newNonce"], timeout=self.timeout, verify=self.verify)
        except requests.RequestException as exc:
            raise LxdctlError("Failed to get an ACME nonce: %s" % exc)
        nonce = resp.headers.get("Replay-Nonce")
        if not nonce:
            raise LxdctlError("The ACME server gave no Replay-Nonce (HTTP %d)" % resp.status_code)
        return nonce

    def post(self, context, url, payload, accept=None, use_jwk=False):
        """A signed POST; ``payload=None`` is a POST-as-GET.  Returns the response."""
        headers = {"Content-Type": "application/jose+json"}
        if accept:
            headers["Accept"] = accept
        for attempt in range(10):
            body = jws(self.key, url, self._new_nonce(), payload, kid=None if use_jwk else self.kid)
            try:
                resp = self.session.post(url, data=json.dumps(body), headers=headers, timeout=self.timeout, verify=self.verify)
            except requests.RequestException as exc:
                raise LxdctlError("%s: %s" % (context, exc))
            self._nonce = resp.headers.get("Replay-Nonce")
            if resp.status_code < 400:
                return resp
            problem = _problem(resp)
            if problem.get("type") == _BAD_NONCE and attempt < 9:
                continue
            raise LxdctlError("%s: the ACME server answered %d: %s" % (context, resp.status_code, _problem_text(problem, resp)))
        raise LxdctlError("%s: too many bad nonces" % context)

    def register(self, email=None):
        payload = {"termsOfServiceAgreed": True}
        if email:
            payload["contact"] = ["mailto:%s" % email]
        resp = self.post("Failed to register the ACME account", self.directory["newAccount"], payload, use_jwk=True)
        self.kid = resp.headers.get("Location")
        if not self.kid:
            raise LxdctlError("The ACME server returned no account URL")
        return self.kid

    def new_order(self, domains):
        payload = {"identifiers": [{"type": "dns", "value": d} for d in domains]}
        resp = self.post("Failed to create an ACME order for %s" % ", ".join(domains), self.directory["newOrder"], payload)
        return resp.headers.get("Location"), resp.json()

    def get(self, context, url):
        return self.post(context, url, None).json()

    def _poll(self, context, url, done, failed):
        deadline = time.time() + self.poll_timeout
        while True:
            obj = self.get(context, url)
            status = obj.get("status")
            if status in done:
                return obj
            if status in failed:
                return obj
            if time.time() > deadline:
                raise LxdctlError("%s: still %s after %d s" % (context, status, self.poll_timeout))
            time.sleep(1)

    def authorize(self, authz_url, webroot):
        context = "ACME authorization %s" % authz_url
        authz = self.get("Failed to read the " + context, authz_url)
        name = authz.get("identifier", {}).get("value", "?")
        if authz.get("status") == "valid":
            return
        challenge = next((c for c in authz.get("challenges", []) if c.get("type") == "http-01"), None)
        if challenge is None:
            raise LxdctlError("The ACME server offers no http-01 challenge for %s" % name)
        token = challenge.get("token", "")
        if not _TOKEN_RE.match(token):  # the token becomes a file name: no path separators
            raise LxdctlError("The ACME server sent a malformed http-01 token for %s" % name)
        directory = os.path.join(webroot, CHALLENGE_DIR)
        token_path = os.path.join(directory, token)
        try:
            if not os.path.isdir(directory):
                os.makedirs(directory, 0o755)
            write_file(token_path, "%s.%s" % (token, jwk_thumbprint(self.key)), 0o644)
            self.post("Failed to answer the http-01 challenge for %s" % name, challenge["url"], {})
            final = self._poll("Validation of %s" % name, authz_url, ("valid",), ("invalid", "deactivated", "expired", "revoked"))
        finally:
            if os.path.exists(token_path):
                os.unlink(token_path)
        if final.get("status") != "valid":
            errors = [c.get("error") for c in final.get("challenges", []) if c.get("error")]
            detail = "; ".join(_problem_text(e) for e in errors) or final.get("status")
            raise LxdctlError("HTTP-01 validation of %s failed: %s" % (name, detail))

    def finalize(self, order_url, order, csr_der):
        order = self._poll("ACME order", order_url, ("ready", "valid"), ("invalid",)) if order.get("status") != "ready" else order
        if order.get("status") == "invalid":
            raise LxdctlError("The ACME order became invalid: %s" % _problem_text(order.get("error") or {}))
        if order.get("status") == "ready":
            self.post("Failed to finalize the ACME order", order["finalize"], {"csr": b64url(csr_der)})
            order = self._poll("ACME order", order_url, ("valid",), ("invalid",))
        if order.get("status") != "valid" or not order.get("certificate"):
            raise LxdctlError("The ACME order did not become valid: %s" % _problem_text(order.get("error") or {}))
        return order

    def download(self, cert_url):
        resp = self.post("Failed to download the certificate", cert_url, None, accept="application/pem-certificate-chain")
        text = resp.text
        if "-----BEGIN CERTIFICATE-----" not in text:
            raise LxdctlError("The ACME server returned no PEM certificate from %s" % cert_url)
        return text

    def issue(self, domains, cert_key, webroot, email=None):
        """Run the whole flow and return the PEM chain."""
        self.register(email)
        order_url, order = self.new_order(domains)
        for authz_url in order.get("authorizations", []):
            self.authorize(authz_url, webroot)
        order = self.finalize(order_url, order, make_csr(cert_key, domains))
        return self.download(order["certificate"])


def _problem(resp):
    try:
        data = resp.json()
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {"detail": resp.text.strip()[:300]}


def _problem_text(problem, resp=None):
    if not problem:
        return resp.reason if resp is not None else "unknown error"
    text = problem.get("detail") or problem.get("type") or str(problem)
    subs = problem.get("subproblems") or []
    if subs:
        text += " (%s)" % "; ".join(s.get("detail", "") for s in subs)
    return text

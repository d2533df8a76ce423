"""TLS for ``lxdctl serve`` and the remote client.

Server: ``--tls-cert``/``--tls-key`` name a certificate and key; ``--tls-self-signed`` makes
one once (``/etc/lxdctl/api-tls/``, or ``LXDCTL_API_TLS_DIR``; key 0600 in a 0700 directory)
and reuses it.  TLS 1.3 only, as the spec asks.  The handshake happens in the request
thread, so a slow client never holds up ``accept``.

Client: a server URL with ``https://`` is verified against the system's CAs, or against
``LXDCTL_CA_BUNDLE`` / ``lxdctl config set ca FILE`` (hostname checked), or pinned by the
certificate's SHA-256 fingerprint (``LXDCTL_FINGERPRINT`` / ``config set fingerprint``),
which is what ``lxdctl serve`` prints for a self-signed certificate.
"""
import datetime
import hashlib
import ipaddress
import os
import socket
import ssl

DEFAULT_DIR = "/etc/lxdctl/api-tls"
DAYS = 825


class TLSError(Exception):
    pass


class FingerprintMismatch(OSError):
    """The server's certificate is not the pinned one (an OSError, like every failure to connect)."""


def tls_dir():
    return os.environ.get("LXDCTL_API_TLS_DIR") or DEFAULT_DIR


def fingerprint_of_der(der):
    digest = hashlib.sha256(der).hexdigest().upper()
    return "SHA256:" + ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


def fingerprint_of_pem(path):
    with open(path) as handle:
        return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(handle.read()))


def normalize_fingerprint(text):
    """``SHA256:AB:CD...``, ``ab:cd...`` or ``abcd...`` -> the hex digest, or raise."""
    value = (text or "").strip()
    if value.upper().startswith("SHA256:"):
        value = value[7:]
    value = value.replace(":", "").lower()
    if len(value) != 64 or any(c not in "0123456789abcdef" for c in value):
        raise TLSError("a fingerprint is the certificate's SHA-256: 64 hex digits (colons allowed), "
                       "as `lxdctl serve` prints it")
    return value


def names_for(host):
    """The names a self-signed certificate is valid for: loopback, this host, the listen address."""
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname()}
    if host and host not in ("0.0.0.0", "::"):
        names.add(host)
    try:
        from lxdctl.api.db import module_utils_config

        address = module_utils_config().get("public_address")
        if address:
            names.add(address)
    except Exception:  # noqa: BLE001 - without a platform the loopback names do
        pass
    return sorted(n for n in names if n)


def self_signed(host):
    """``(cert path, key path)`` of the server's self-signed certificate; made on first use."""
    base = tls_dir()
    cert, key = os.path.join(base, "cert.pem"), os.path.join(base, "key.pem")
    if os.path.isfile(cert) and os.path.isfile(key):
        return cert, key
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    os.makedirs(base, mode=0o700, exist_ok=True)
    os.chmod(base, 0o700)
    private = ec.generate_private_key(ec.SECP256R1())
    alt = []
    for name in names_for(host):
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "lxdctl api %s" % socket.gethostname())])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(private.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=DAYS))
                   .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                   .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                   .sign(private, hashes.SHA256()))
    _write(key, private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()), 0o600)
    _write(cert, certificate.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert, key


def _write(path, data, mode):
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def server_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise TLSError("cannot load the TLS certificate %s / key %s: %s" % (cert, key, getattr(exc, "strerror", None)
                                                                            or exc))
    return ctx


# --- the client side -------------------------------------------------------------------
def client_context(ca_file=None, fingerprint=None):
    if fingerprint:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the pin below replaces CA trust
    else:
        ctx = ssl.create_default_context(cafile=ca_file or None)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx


def https_connection(host, port, timeout, ca_file=None, fingerprint=None):
    import http.client

    pin = normalize_fingerprint(fingerprint) if fingerprint else None

    class Pinned(http.client.HTTPSConnection):
        def connect(self):
            super().connect()
            if pin:
                der = self.sock.getpeercert(binary_form=True)
                if hashlib.sha256(der).hexdigest() != pin:
                    self.sock.close()
                    raise FingerprintMismatch("the server's certificate %s is not the pinned %s"
                                              % (fingerprint_of_der(der), fingerprint))

    return Pinned(host, port, timeout=timeout, context=client_context(ca_file, fingerprint))

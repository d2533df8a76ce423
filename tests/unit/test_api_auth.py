"""TOTP (RFC 6238 vectors), token format and hashing, passwords, principals, rate limits."""
import hashlib

import pytest

from lxdctl.api import auth

SHA1_KEY = b"12345678901234567890"
SHA256_KEY = b"12345678901234567890123456789012"
SHA512_KEY = b"1234567890" * 6 + b"1234"
# RFC 6238, appendix B
VECTORS = [
    (59, "94287082", "46119246", "90693936"),
    (1111111109, "07081804", "68084774", "25091201"),
    (1111111111, "14050471", "67062674", "99943326"),
    (1234567890, "89005924", "91819424", "93441116"),
    (2000000000, "69279037", "90698825", "38618901"),
    (20000000000, "65353130", "77737706", "47863826"),
]


@pytest.mark.parametrize("at,sha1,sha256,sha512", VECTORS)
def test_totp_rfc6238_vectors(at, sha1, sha256, sha512):
    assert auth.totp(SHA1_KEY, at, digits=8, digest="sha1") == sha1
    assert auth.totp(SHA256_KEY, at, digits=8, digest="sha256") == sha256
    assert auth.totp(SHA512_KEY, at, digits=8, digest="sha512") == sha512


def test_hotp_rfc4226_vectors():
    expected = ["755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871", "520489"]
    assert [auth.hotp(SHA1_KEY, i) for i in range(10)] == expected


def test_verify_totp_accepts_one_step_either_side_only():
    at = 1700000000
    code = auth.totp(SHA1_KEY, at)
    assert auth.verify_totp(SHA1_KEY, code, at)
    assert auth.verify_totp(SHA1_KEY, code, at + 30)
    assert auth.verify_totp(SHA1_KEY, code, at - 30)
    assert not auth.verify_totp(SHA1_KEY, code, at + 90)
    assert not auth.verify_totp(SHA1_KEY, "", at)
    assert not auth.verify_totp(SHA1_KEY, "12345a", at)
    assert not auth.verify_totp(SHA1_KEY, None, at)


def test_totp_secret_round_trip_and_uri():
    secret = auth.new_totp_secret()
    assert len(auth.b32_key(secret)) == 20
    uri = auth.otpauth_uri("alice", secret)
    assert uri.startswith("otpauth://totp/lxdctl:alice?secret=%s" % secret)


def test_token_format_and_hash():
    token_id, token = auth.new_token()
    match = auth.TOKEN_RE.match(token)
    assert match and match.group(1) == token_id
    assert auth.token_hash(token) == hashlib.sha256(token.encode()).hexdigest()
    assert token not in auth.token_hash(token)
    others = set(auth.new_token()[1] for _ in range(200))
    assert len(others) == 200


def test_passwords():
    stored = auth.hash_password("correct horse battery")
    assert stored.startswith("scrypt$") and "correct" not in stored
    assert auth.verify_password("correct horse battery", stored)
    assert not auth.verify_password("correct horse batterY", stored)
    assert not auth.verify_password("x", "garbage")


def test_tokens_in_a_store(tmp_path, monkeypatch):
    monkeypatch.setenv("LXDCTL_DATABASE_URL", "sqlite:///%s/state.db" % tmp_path)
    monkeypatch.setenv("LXDCTL_STATE_KEY_FILE", str(tmp_path / "key"))
    from lxdctl.api import db

    st = db.state().StateStore.open()
    token, row = auth.create_token(st, "ci", "developer", ["myapp"], "write")
    stored = db.rows(st, "SELECT token_hash FROM api_tokens")
    assert stored == [{"token_hash": auth.token_hash(token)}]
    p = auth.authenticate_token(st, token)
    assert p.role == "developer" and p.projects == {"myapp"} and p.actor == "token:%s" % row["token_id"]
    assert auth.authenticate_token(st, token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert auth.authenticate_token(st, "lxdctl_00000000_" + "a" * 43) is None
    assert auth.authenticate_token(st, "nonsense") is None
    assert auth.revoke_token(st, row["token_id"])
    assert auth.authenticate_token(st, token) is None
    expired, _ = auth.create_token(st, "old", "viewer", "*", "read", expires_in=-1)
    assert auth.authenticate_token(st, expired) is None
    st.close()


def test_principal_decisions():
    dev = auth.Principal("token", "token:a", "developer", {"p1"}, "write")
    assert dev.decide("read", "p1") is None and dev.decide("write", "p1") is None
    assert dev.decide("read", "p2")[0] == 404 and dev.decide("write", "p2")[0] == 404
    assert dev.decide("admin", None)[0] == 403
    assert dev.decide("write", None)[0] == 403  # a project-less mutation needs all projects
    reader = auth.Principal("token", "token:b", "developer", None, "read")
    assert reader.decide("read", "p2") is None and reader.decide("write", "p2")[0] == 403
    viewer = auth.Principal("token", "token:c", "viewer", None, "write")
    assert viewer.decide("write", "p1")[0] == 403
    admin = auth.Principal("token", "token:d", "admin", None, "write")
    assert admin.decide("admin", None) is None and admin.decide("write", "any") is None
    scoped_admin = auth.Principal("token", "token:e", "admin", {"p1"}, "write")
    assert scoped_admin.decide("admin", None)[0] == 403
    user = auth.Principal("session", "user:u", "developer", set(), "write", {"p1": "viewer", "p2": "developer"})
    assert user.decide("read", "p1") is None and user.decide("write", "p1")[0] == 403
    assert user.decide("write", "p2") is None and user.decide("read", "p3")[0] == 404


def test_rate_limiter_token_bucket():
    limiter = auth.RateLimiter(rate=2, burst=3)
    t = 1000.0
    assert [limiter.check("k", t)[0] for _ in range(3)] == [True] * 3
    allowed, retry = limiter.check("k", t)
    assert not allowed and 0 < retry <= 0.5
    assert limiter.check("other", t)[0]
    assert limiter.check("k", t + 0.5)[0]  # one token back after 1/rate s
    assert not limiter.check("k", t + 0.5)[0]
    assert [limiter.check("k", t + 100)[0] for _ in range(4)] == [True, True, True, False]  # never above burst

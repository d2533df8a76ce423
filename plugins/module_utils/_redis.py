# -*- coding: utf-8 -*-
"""The Redis client wrapper (redis-py).  ``redis_acl_user`` goes through here.

A tenant is an ACL user limited to the keys and Pub/Sub channels under its prefix, with
every pattern-blind or server-wide command denied (KEYS, SCAN, RANDOMKEY, FLUSH*, CONFIG,
ACL, and the rest of ``@dangerous``).  Users are persisted with ``ACL SAVE``.

Passwords are set as their SHA-256 (``#<hex>``), the form Redis stores, so the clear
password is never sent; comparing is done on that hash.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import binascii
import hashlib
import os
import re

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _platform_config

try:
    import redis

    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None
except ImportError as exc:  # reported by require_redis()
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = exc

MASK = "********"

CONNECTION_ARGSPEC = dict(
    redis_host=dict(type="str", fallback=(env_fallback, ["LXDCTL_REDIS_HOST"])),
    redis_port=dict(type="int", fallback=(env_fallback, ["LXDCTL_REDIS_PORT"])),
    redis_admin_user=dict(type="str", fallback=(env_fallback, ["LXDCTL_REDIS_ADMIN_USER"])),
    redis_admin_password=dict(type="str", no_log=True, fallback=(env_fallback, ["LXDCTL_REDIS_ADMIN_PASSWORD"])),
)

_CONFIG_MAPPING = {
    "redis_host": "host",
    "redis_port": "port",
    "redis_admin_user": "admin_user",
    "redis_admin_password": "admin_password",
}

# --- names: the rules themselves live in _names (one rule everywhere) --------------------
USER_RULE = _names.REDIS_USER_RULE
PREFIX_RULE = _names.REDIS_PREFIX_RULE
user_name = _names.redis_user_name
key_prefix = _names.redis_key_prefix


def argspec_user_name(value):
    return user_name(value)


def argspec_key_prefix(value):
    return key_prefix(value)


argspec_user_name.__name__ = "user_name"
argspec_key_prefix.__name__ = "key_prefix"


def glob_escape(text):
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


# --- ACL rules ------------------------------------------------------------------------------
# Denied on top of @dangerous (which holds KEYS, FLUSHALL, FLUSHDB, CONFIG, ACL, DEBUG,
# SHUTDOWN, MONITOR, INFO, SWAPDB, MIGRATE, CLIENT KILL/LIST ...): the pattern-blind or
# cross-tenant commands that are not in it.
DENIED_COMMANDS = (
    "keys", "scan", "randomkey", "flushall", "flushdb", "config", "acl",
    "select", "swapdb", "move", "dbsize", "pubsub", "function", "fcall", "fcall_ro",
    "script|flush", "script|kill", "script|debug",
)
COMMAND_RULES = ("+@all", "-@dangerous") + tuple("-" + cmd for cmd in DENIED_COMMANDS)


def password_hash(password):
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def acl_rules(prefix, password_hashes):
    """The ``ACL SETUSER`` arguments after the user name (passwords as ``#sha256``)."""
    key_prefix(prefix)
    rules = ["reset", "on"]
    rules += ["#%s" % digest for digest in password_hashes]
    pattern = glob_escape(prefix) + "*"
    rules += ["~" + pattern, "&" + pattern]
    rules += list(COMMAND_RULES)
    return rules


def display_rules(rules):
    return ["#" + MASK if rule.startswith("#") or rule.startswith(">") else rule for rule in rules]


def _tokens(text):
    return [token.lower() for token in (text or "").split()]


def user_matches(info, prefix, password_hashes, canonical_commands=None):
    """True when ``ACL GETUSER`` ``info`` (parsed, see ``parse_getuser``) is the tenant state.

    Redis rewrites a user's command rules into its own compact form (``+@all -@dangerous
    -@scripting +evalsha ...`` in 7.0), so ``canonical_commands`` is that form of
    ``COMMAND_RULES`` as this server renders it (see ``Redis.canonical_commands``).
    """
    if info is None:
        return False
    flags = set(info.get("flags") or [])
    if "on" not in flags or flags & {"nopass", "allkeys", "allchannels", "allcommands"}:
        return False
    if sorted(info.get("passwords") or []) != sorted(password_hashes):
        return False
    pattern = glob_escape(prefix) + "*"
    if _tokens(info.get("keys")) != ["~" + pattern.lower()]:
        return False
    if _tokens(info.get("channels")) != ["&" + pattern.lower()]:
        return False
    if info.get("selectors"):
        return False
    if canonical_commands is None:
        canonical_commands = " ".join(COMMAND_RULES)
    return _command_shape(info.get("commands")) == _command_shape(canonical_commands)


def _command_shape(text):
    """Category rules in order, single-command rules as a set: Redis renders the categories
    first and the per-command exceptions after them in its command table's order, which is
    not stable across calls."""
    tokens = _tokens(text)
    categories = [token for token in tokens if token[1:2] == "@"]
    return categories, frozenset(token for token in tokens if token[1:2] != "@")


def parse_getuser(reply):
    """The flat ``ACL GETUSER`` reply (RESP2 list of key, value) as a dict of text."""
    if reply is None:
        return None
    if isinstance(reply, dict):
        items = list(reply.items())
    else:
        items = list(zip(reply[0::2], reply[1::2]))
    info = {}
    for key, value in items:
        info[_text(key)] = _deep_text(value)
    return info


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else value


def _deep_text(value):
    if isinstance(value, (list, tuple)):
        return [_deep_text(item) for item in value]
    return _text(value)


def state_view(name, info):
    if info is None:
        return {}
    return {
        "user": name,
        "enabled": "on" in (info.get("flags") or []),
        "keys": info.get("keys"),
        "channels": info.get("channels"),
        "commands": info.get("commands"),
        "passwords": len(info.get("passwords") or []),
    }


def desired_view(name, prefix, state, passwords):
    if state == "absent":
        return {}
    pattern = glob_escape(prefix) + "*"
    return {
        "user": name,
        "enabled": True,
        "keys": "~" + pattern,
        "channels": "&" + pattern,
        "commands": " ".join(COMMAND_RULES),
        "passwords": passwords,
    }


# --- the client -----------------------------------------------------------------------------
def require_redis():
    if not HAS_REDIS:
        raise LxdctlError("The redis Python library is required on the managed host: %s" % REDIS_IMPORT_ERROR)


def resolve(params):
    resolved = _platform_config.resolve(params, "redis", _CONFIG_MAPPING)
    section = _platform_config.section("redis")
    resolved["redis_host"] = resolved.get("redis_host") or "127.0.0.1"
    resolved["redis_port"] = int(resolved.get("redis_port") or 6379)
    resolved["tenant_host"] = section.get("tenant_host") or resolved["redis_host"]
    return resolved


class Redis(object):
    def __init__(self, params):
        require_redis()
        self.params = resolve(params)
        self.host = self.params["redis_host"]
        self.port = self.params["redis_port"]
        self.tenant_host = self.params["tenant_host"]
        self.commands = []
        self._canonical = None
        self.client = redis.Redis(
            host=self.host, port=self.port, username=self.params.get("redis_admin_user") or None,
            password=self.params.get("redis_admin_password") or None, socket_timeout=15,
            socket_connect_timeout=10, decode_responses=False,
        )
        self._call("Failed to connect to Redis at %s:%s" % (self.host, self.port), "PING")

    def close(self):
        try:
            self.client.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass

    def _call(self, context, *args):
        try:
            return self.client.execute_command(*args)
        except redis.RedisError as exc:
            raise LxdctlError("%s: %s" % (context, exc))

    def get_user(self, name):
        return parse_getuser(self._call("Failed to read ACL user %s" % name, "ACL", "GETUSER", name))

    def canonical_commands(self):
        """``COMMAND_RULES`` as this server renders them, read from a scratch user.

        The scratch user is disabled, has no password, keys or channels, lives only in
        memory (it is never saved) and is deleted at once.
        """
        if self._canonical is None:
            scratch = "lxdctl-probe-%s" % binascii.hexlify(os.urandom(6)).decode("ascii")
            try:
                self._call("Failed to render the ACL rules", "ACL", "SETUSER", scratch, "reset", "off",
                           *COMMAND_RULES)
                info = parse_getuser(self._call("Failed to render the ACL rules", "ACL", "GETUSER", scratch))
            finally:
                try:
                    self.client.execute_command("ACL", "DELUSER", scratch)
                except redis.RedisError:
                    pass
            self._canonical = (info or {}).get("commands") or ""
        return self._canonical

    def set_user(self, name, rules):
        self._call("Failed to set ACL user %s" % name, "ACL", "SETUSER", name, *rules)
        self.commands.append(" ".join(["ACL SETUSER", name] + display_rules(rules)))

    def delete_user(self, name):
        self._call("Failed to delete ACL user %s" % name, "ACL", "DELUSER", name)
        self.commands.append("ACL DELUSER %s" % name)

    def save_acl(self):
        self._call("Failed to persist the ACL users (ACL SAVE; is an aclfile configured?)", "ACL", "SAVE")
        self.commands.append("ACL SAVE")

    def scan_keys(self, prefix):
        """All keys under ``prefix`` (SCAN as the admin, never KEYS)."""
        key_prefix(prefix)
        found = []
        cursor = 0
        match = glob_escape(prefix) + "*"
        while True:
            cursor, batch = self._call("Failed to scan keys %s" % match, "SCAN", cursor, "MATCH", match, "COUNT", 1000)
            cursor = int(cursor)
            found.extend(key for key in batch if _text(key).startswith(prefix))
            if cursor == 0:
                return found

    def delete_keys(self, keys):
        for start in range(0, len(keys), 500):
            self._call("Failed to delete keys", "UNLINK", *keys[start:start + 500])
        if keys:
            self.commands.append("UNLINK <%d keys>" % len(keys))


def list_users(client):
    """Every ACL user name on the server (reconcile)."""
    return sorted(_text(name) for name in client._call("Failed to list the ACL users", "ACL", "USERS"))

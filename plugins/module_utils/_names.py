# -*- coding: utf-8 -*-
"""The single name, domain and value rules of lxdctl.

The CLI (click callbacks), the API server and every module's argument_spec (``type=``
one of the ``argspec_*`` callables below) validate through these functions, so a name that
one layer accepts is accepted by all of them.  Nothing in here imports Ansible.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import ValidationError

PROJECT_NAME_MAX = 32
_PROJECT_NAME_RE = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9]))*$")
_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
_ENV_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SIZE_RE = re.compile(r"^[1-9][0-9]{0,6}(?:B|KiB|MiB|GiB|TiB|kB|MB|GB|TB)$")

RESERVED_NAMES = frozenset(
    """admin api default localhost lxdctl mysql mariadb platform postgres postgresql redis
    root template0 template1 www""".split()
)

PROJECT_NAME_RULE = (
    "must be 1-%d characters of lowercase letters, digits and single hyphens, start with a "
    "letter and not end with a hyphen" % PROJECT_NAME_MAX
)
DOMAIN_RULE = (
    "must be a DNS name of at most 253 characters, with two or more labels of 1-63 letters, "
    "digits or inner hyphens"
)
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT")


def project_name(value, field="name"):
    """Return ``value`` if it is a valid project name, else raise ``ValidationError``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, PROJECT_NAME_RULE, value)
    if len(value) > PROJECT_NAME_MAX or not _PROJECT_NAME_RE.fullmatch(value):
        raise ValidationError(field, PROJECT_NAME_RULE, value)
    if value in RESERVED_NAMES:
        raise ValidationError(field, "%r is reserved; choose another name" % value)
    return value


def domain(value, field="domain"):
    """Return the lower-cased domain (no trailing dot) or raise ``ValidationError``."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, DOMAIN_RULE, value)
    name = value.lower()
    if name.endswith("."):
        name = name[:-1]
    if len(name) > 253:
        raise ValidationError(field, "must be at most 253 characters, got %d" % len(name))
    labels = name.split(".")
    if len(labels) < 2:
        raise ValidationError(field, DOMAIN_RULE, value)
    for label in labels:
        if len(label) > 63:
            raise ValidationError(field, "label %r is longer than 63 characters" % label[:20])
        if not _LABEL_RE.fullmatch(label):
            raise ValidationError(field, DOMAIN_RULE, value)
    return name


def zone_name(value, field="zone"):
    """A zone is a domain; PowerDNS wants it canonical with a trailing dot."""
    return domain(value, field) + "."


def env_key(value, field="env"):
    if not isinstance(value, str) or not _ENV_KEY_RE.fullmatch(value):
        raise ValidationError(
            field, "variable names must match [A-Za-z_][A-Za-z0-9_]* (at most 128 characters)", value
        )
    return value


def port(value, field="port"):
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be a whole number from 1 to 65535", value)
    if isinstance(value, bool) or not 1 <= number <= 65535 or str(value) != str(number):
        raise ValidationError(field, "must be a whole number from 1 to 65535", value)
    return number


def size(value, field="size"):
    """An LXD size such as 512MiB or 2GiB."""
    if not isinstance(value, str) or not _SIZE_RE.fullmatch(value):
        raise ValidationError(field, "must be a size such as 512MiB, 2GiB or 10GB", value)
    return value


def record_content(rtype, value, field="content"):
    """Validate record content for its type; return it in PowerDNS's canonical form."""
    rtype = (rtype or "").upper()
    if rtype not in RECORD_TYPES:
        raise ValidationError("type", "must be one of %s" % ", ".join(RECORD_TYPES), rtype)
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must not be empty")
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError(field, "must not contain newlines or NUL characters")
    if rtype == "A":
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValidationError(field, "an A record needs an IPv4 address", value)
    if rtype == "AAAA":
        try:
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            raise ValidationError(field, "an AAAA record needs an IPv6 address", value)
    if rtype in ("CNAME", "MX"):
        return domain(value, field) + "."
    # TXT: printable ASCII without quotes, backslashes, braces or semicolons (zone-file syntax),
    # stored as one quoted string.
    text = value[1:-1] if len(value) >= 2 and value[0] == value[-1] == '"' else value
    if len(text) > 255 or any(ord(ch) < 32 or ord(ch) > 126 or ch in '"\\{};' for ch in text):
        raise ValidationError(
            field,
            "TXT content must be at most 255 printable ASCII characters without quotes, backslashes, braces or semicolons",
        )
    return '"%s"' % text


def safe_text(value, field):
    """Text that ends up in a config file: no newlines, braces, semicolons, quotes or NULs."""
    if not isinstance(value, str) or any(ch in value for ch in "\r\n\x00{};'\"`$\\"):
        raise ValidationError(field, "must not contain newlines, braces, semicolons, quotes, $ or backslashes", value)
    return value


INSTANCE_NAME_MAX = 63
INSTANCE_NAME_RULE = (
    "must be 1-%d characters of lowercase letters, digits and single hyphens, start with a "
    "letter and not end with a hyphen" % INSTANCE_NAME_MAX
)


def instance_name(value, field="name"):
    """An LXD instance name: a DNS label of lowercase letters, digits and inner hyphens."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, INSTANCE_NAME_RULE, value)
    if len(value) > INSTANCE_NAME_MAX or not _PROJECT_NAME_RE.fullmatch(value):
        raise ValidationError(field, INSTANCE_NAME_RULE, value)
    return value


SQL_NAME_MAX = 63
_SQL_NAME_RE = re.compile(r"^[a-z][a-z0-9_]*$")
SQL_NAME_RULE = (
    "must be 1-%d characters of lowercase letters, digits and underscores, starting with a letter" % SQL_NAME_MAX
)
# Names each database server keeps for itself (plus our own admin account).
SQL_RESERVED = {
    "postgres": frozenset(["postgres", "template0", "template1", "public", "lxdctl_admin", "root"]),
    "mysql": frozenset(["mysql", "information_schema", "performance_schema", "sys", "root", "lxdctl_admin",
                        "mariadb", "test"]),
}
REDIS_USER_MAX = 64
_REDIS_USER_RE = re.compile(r"^[a-z][a-z0-9_-]*$")
_REDIS_PREFIX_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*:$")
REDIS_RESERVED_USERS = frozenset(["default", "lxdctl_admin", "admin", "root"])
REDIS_USER_RULE = (
    "must be 1-%d characters of lowercase letters, digits, _ and -, starting with a letter" % REDIS_USER_MAX
)
REDIS_PREFIX_RULE = (
    "must be lowercase letters, digits, _ and - ending in one ':' (at most 64 characters), "
    "so that no tenant's prefix is the start of another's"
)


def sql_name(value, field="name", server="postgres"):
    """A database or role name for ``server`` (postgres or mysql): a plain lowercase identifier."""
    if not isinstance(value, str) or len(value) > SQL_NAME_MAX or not _SQL_NAME_RE.fullmatch(value):
        raise ValidationError(field, SQL_NAME_RULE, value)
    if value in SQL_RESERVED[server] or (server == "postgres" and value.startswith("pg_")):
        raise ValidationError(field, "%r is reserved; choose another name" % value)
    return value


def redis_user_name(value, field="name"):
    if not isinstance(value, str) or len(value) > REDIS_USER_MAX or not _REDIS_USER_RE.fullmatch(value):
        raise ValidationError(field, REDIS_USER_RULE, value)
    if value in REDIS_RESERVED_USERS:
        raise ValidationError(field, "%r is reserved; choose another name" % value)
    return value


def redis_key_prefix(value, field="key_prefix"):
    if not isinstance(value, str) or len(value) > 64 or not _REDIS_PREFIX_RE.fullmatch(value):
        raise ValidationError(field, REDIS_PREFIX_RULE, value)
    return value


# Derived names: every backend object a project owns is named from its project name here.
def container_name(project):
    return "lxdctl-%s" % project_name(project)


def sql_identifier(project):
    """Database and role names: hyphens are not valid in unquoted SQL identifiers."""
    return "p_%s" % project_name(project).replace("-", "_")


def redis_user(project):
    return "p-%s" % project_name(project)


def redis_prefix(project):
    return "%s:" % project_name(project)


# Callables for argument_spec ``type=``: Ansible reports their ValueError text as the reason.
def _argspec(func):
    def check(value):
        return func(value)

    check.__name__ = func.__name__
    check.__doc__ = func.__doc__
    return check


argspec_project_name = _argspec(project_name)
argspec_domain = _argspec(domain)
argspec_zone = _argspec(zone_name)
argspec_port = _argspec(port)
argspec_size = _argspec(size)
argspec_env_key = _argspec(env_key)
argspec_instance_name = _argspec(instance_name)


# Derived names read backwards, for reconcile's orphan search.
_CI_CONTAINER_RE = re.compile(r"^ci-(.+)-[0-9]+$")


def projects_named_by(kind, name):
    """The project names that ``name`` (a ``kind`` of backend object) can be derived from.

    ``kind`` is container, sql, redis_user, site or dns (a name ``<label>.<zone>``, with no
    trailing dot).  Empty when lxdctl would not have named the object so; more than one
    entry where the rule is ambiguous (``lxdctl-a-green`` is project a-green's container or
    project a's second blue-green one).
    """
    if not isinstance(name, str):
        return []
    if kind == "container":
        if not name.startswith("lxdctl-"):
            return []
        rest = name[len("lxdctl-"):]
        candidates = [rest]
        if rest.endswith("-green"):
            candidates.append(rest[:-len("-green")])
        ci = _CI_CONTAINER_RE.match(rest)
        if ci:
            candidates.append(ci.group(1))
    elif kind == "sql":
        candidates = [name[2:].replace("_", "-")] if name.startswith("p_") else []
    elif kind == "redis_user":
        candidates = [name[2:]] if name.startswith("p-") else []
    elif kind == "site":
        candidates = [name]
    elif kind == "dns":
        candidates = [name.split(".", 1)[0]] if "." in name else []
    else:
        raise ValueError("kind: must be container, sql, redis_user, site or dns, got %r" % (kind,))
    found = []
    for candidate in candidates:
        try:
            project_name(candidate)
        except ValidationError:
            continue
        if candidate not in found:
            found.append(candidate)
    return found

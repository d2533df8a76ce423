"""``lxdctl env``: show, set and unset a project's environment variables.

    lxdctl env <name> [--output json] [--show-secrets]
    lxdctl env set <name> K=V ...
    lxdctl env unset <name> K ...

Values are literal: whatever follows the first ``=`` (newlines, quotes, ``{{ }}``) is stored
encrypted in the state and written to the container's env file as it is.  ``set`` and
``unset`` run ``playbooks/env_set.yml``; showing reads the state store directly.
"""
import os
import re

import click

from lxdctl.collection import module_utils
from lxdctl.execute import execute
from lxdctl.options import output_option, rule, run_options
from lxdctl.output import emit

# Written by lxdctl itself from the project's database and cache; not settable by hand.
MANAGED_KEYS = ("DATABASE_URL", "POSTGRES_URL", "MYSQL_URL", "REDIS_URL", "REDIS_KEY_PREFIX",
                "MEMCACHED_SERVERS", "PORT")
_SECRETISH = re.compile(r"pass|secret|token|key|credential|private|auth|cookie|session|dsn|url", re.I)
_URL_PASSWORD = re.compile(r"(://[^:/@]*:)[^@]*@")
MASK = "********"
_PLAIN_MANAGED = ("PORT", "REDIS_KEY_PREFIX", "MEMCACHED_SERVERS")


# --- parsing -----------------------------------------------------------------------
def _env_key(key, field):
    names = module_utils("_names")
    errors = module_utils("_errors")
    try:
        return names.env_key(key, field)
    except errors.ValidationError as exc:
        raise click.BadParameter(exc.rule, param_hint=field)


def _not_managed(key, field):
    if key in MANAGED_KEYS:
        raise click.BadParameter("%s is set by lxdctl from the project's database and cache; it cannot be set by hand"
                                 % key, param_hint=field)
    return key


def parse_assignment(text, field="K=V"):
    """``KEY=value`` -> (key, value); the value is everything after the first ``=``, verbatim."""
    if "=" not in text:
        raise click.BadParameter("%r is not KEY=VALUE" % text[:40], param_hint=field)
    key, value = text.split("=", 1)
    key = _not_managed(_env_key(key, field), field)
    if "\x00" in value:
        raise click.BadParameter("the value of %s contains a NUL character" % key, param_hint=field)
    return key, value


_DQ_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse_env_text(text, field="--env"):
    """Parse an env file.  Lines: ``KEY=value`` (the rest of the line, literal),
    ``KEY='value'`` (literal), ``KEY="value"`` (with \\n \\t \\r \\" \\\\ escapes), optional
    ``export`` prefix; blank lines and lines starting with ``#`` are skipped."""
    env = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        where = "%s line %d" % (field, number)
        if line.startswith("export "):
            line = line[len("export "):].lstrip()
        if "=" not in line:
            raise click.BadParameter("line %d is not KEY=VALUE: %r" % (number, raw[:60]), param_hint=field)
        key, value = line.split("=", 1)
        key = key.strip()
        names = module_utils("_names")
        errors = module_utils("_errors")
        try:
            names.env_key(key, where)
        except errors.ValidationError as exc:
            raise click.BadParameter("line %d: %s (got %r)" % (number, exc.rule, key[:40]), param_hint=field)
        if key in MANAGED_KEYS:
            raise click.BadParameter("line %d: %s is set by lxdctl itself" % (number, key), param_hint=field)
        value = raw.split("=", 1)[1]  # keep inner whitespace exactly
        stripped = value.strip()
        if stripped[:1] == "'":
            if len(stripped) < 2 or not stripped.endswith("'"):
                raise click.BadParameter("line %d: unterminated single quote" % number, param_hint=field)
            value = stripped[1:-1]
        elif stripped[:1] == '"':
            value = _unquote_double(stripped, number, field)
        else:
            value = value.lstrip()
        if "\x00" in value:
            raise click.BadParameter("line %d: NUL character in the value" % number, param_hint=field)
        env[key] = value
    return env


def _unquote_double(text, number, field):
    out = []
    i = 1
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt not in _DQ_ESCAPES:
                raise click.BadParameter("line %d: unknown escape \\%s" % (number, nxt), param_hint=field)
            out.append(_DQ_ESCAPES[nxt])
            i += 2
            continue
        if ch == '"':
            if text[i + 1:].strip():
                raise click.BadParameter("line %d: text after the closing quote" % number, param_hint=field)
            return "".join(out)
        out.append(ch)
        i += 1
    raise click.BadParameter("line %d: unterminated double quote" % number, param_hint=field)


def read_env_file(ctx, param, value):
    """click callback for ``--env FILE``: the parsed variables, or a clear error."""
    if value is None:
        return None
    try:
        with open(value, "rb") as handle:
            data = handle.read()
    except (IOError, OSError) as exc:
        raise click.BadParameter("cannot read %s: %s" % (value, exc.strerror or exc), ctx=ctx, param=param)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise click.BadParameter("%s is not UTF-8 text (line %d)" % (value, line), ctx=ctx, param=param)
    return parse_env_text(text, "--env")


# --- showing -------------------------------------------------------------------------
def mask_value(key, value):
    """Hide credentials: a URL's password, or the whole value of a secret-looking name."""
    if key in _PLAIN_MANAGED:
        return value
    if _URL_PASSWORD.search(value):
        return _URL_PASSWORD.sub(r"\1%s@" % MASK, value)
    if _SECRETISH.search(key):
        return MASK
    return value


def open_state():
    state = module_utils("_state")
    errors = module_utils("_errors")
    try:
        return state.StateStore.open()
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)


def require_project(store, name):
    if store.get_project(name) is None:
        raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)


class EnvGroup(click.Group):
    """``lxdctl env NAME`` shows; ``lxdctl env set|unset NAME ...`` change."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["show"] + list(args)
        return super().parse_args(ctx, args)


@click.group(cls=EnvGroup)
def env():
    """Show or change a project's environment variables.

    \b
      lxdctl env NAME [--output json] [--show-secrets]
      lxdctl env set NAME KEY=VALUE ...
      lxdctl env unset NAME KEY ...
    """


@env.command("show")
@click.argument("name", callback=rule("project_name"))
@click.option("--show-secrets", is_flag=True, help="Print passwords and secret values in clear.")
@output_option
def show(name, show_secrets, output):
    """Show the environment of project NAME (credentials masked unless --show-secrets)."""
    errors = module_utils("_errors")
    store = open_state()
    try:
        require_project(store, name)
        values = store.get_env(name, reveal=True)
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    if not show_secrets:
        values = dict((key, mask_value(key, value)) for key, value in values.items())
    if output == "json":
        emit(values, output)
    else:
        emit([{"key": k, "value": v} for k, v in sorted(values.items())], output, columns=["key", "value"])


@env.command("set")
@click.argument("name", callback=rule("project_name"))
@click.argument("assignments", nargs=-1, required=True, metavar="KEY=VALUE...")
@run_options
def set_(name, assignments, dry_run, verbose):
    """Set variables of project NAME; the app's env file is rewritten."""
    values = dict(parse_assignment(item) for item in assignments)
    execute("env_set", {"project_action": "env_set", "project_name": name, "project_env": values,
                        "lxdctl_owner_pid": os.getpid()}, dry_run=dry_run, verbose=verbose)


@env.command("unset")
@click.argument("name", callback=rule("project_name"))
@click.argument("keys", nargs=-1, required=True, metavar="KEY...")
@run_options
def unset(name, keys, dry_run, verbose):
    """Remove variables of project NAME; the app's env file is rewritten."""
    keys = [_not_managed(_env_key(key, "KEY"), "KEY") for key in keys]
    execute("env_set", {"project_action": "env_unset", "project_name": name, "project_env_unset": keys,
                        "lxdctl_owner_pid": os.getpid()}, dry_run=dry_run, verbose=verbose)

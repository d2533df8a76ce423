"""``lxdctl config set server URL|token TOKEN|ca FILE|fingerprint SHA256`` and ``config show``.

Stored in ``~/.config/lxdctl/config.json`` (mode 0600).  With a server set, every other
command runs on that server (see ``lxdctl.api.client``); ``LXDCTL_SERVER`` and
``LXDCTL_TOKEN`` override the file, ``LXDCTL_LOCAL=1`` forces local mode.
"""
import click

from lxdctl.api import client
from lxdctl.options import output_option
from lxdctl.output import emit

KEYS = ("server", "token", "ca", "fingerprint")


@click.group()
def config():
    """The remote CLI's settings: the server URL, the API token and how to trust an https server."""


@config.command("set")
@click.argument("key", type=click.Choice(KEYS))
@click.argument("value")
def set_value(key, value):
    """Set KEY to VALUE: server (URL), token, ca (a CA bundle file that signed an https server's
    certificate) or fingerprint (the server certificate's SHA-256, as `lxdctl serve` prints it)."""
    import os

    if key == "server":
        value = value.rstrip("/")
        if not value.startswith(("http://", "https://")):
            raise click.BadParameter("the server URL starts with http:// or https://", param_hint="VALUE")
    elif key == "ca":
        if not os.path.isfile(value):
            raise click.BadParameter("ca must name a readable PEM file: %s" % value, param_hint="VALUE")
        value = os.path.abspath(value)
    elif key == "fingerprint":
        from lxdctl.api import tls

        try:
            tls.normalize_fingerprint(value)
        except tls.TLSError as exc:
            raise click.BadParameter(str(exc), param_hint="VALUE")
    data = client.load_config()
    data[key] = value
    client.save_config(data)
    click.echo("%s set (%s)" % (key, client.config_path()), err=True)


@config.command("unset")
@click.argument("key", type=click.Choice(KEYS))
def unset(key):
    """Remove KEY (without a server, commands run locally again)."""
    data = client.load_config()
    data.pop(key, None)
    client.save_config(data)
    click.echo("%s unset" % key, err=True)


@config.command("show")
@output_option
def show(output):
    """The settings in effect (the token masked)."""
    data = client.load_config()
    import os

    server = os.environ.get("LXDCTL_SERVER") or data.get("server")
    token = os.environ.get("LXDCTL_TOKEN") or data.get("token")
    masked = (token[:15] + "…") if token else None
    ca_file, fingerprint = client.tls_settings()
    emit({"server": server, "token": masked, "ca": ca_file, "fingerprint": fingerprint, "file": client.config_path(),
          "mode": "remote" if client.remote_settings() else "local"}, output)

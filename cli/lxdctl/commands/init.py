"""``lxdctl init``: set up this host as the lxdctl platform (playbooks/bootstrap.yml).

Every option maps to one variable of role ``platform`` (see its meta/argument_specs.yml);
options left out keep what an earlier successful run was given (remembered in
``init-settings.json`` beside the platform configuration), else the role's defaults, so a
plain ``lxdctl init`` never undoes an earlier ``--no-nat``.
"""
import ipaddress
import json
import os
import re

import click

from lxdctl.collection import module_utils
from lxdctl.execute import execute
from lxdctl.options import rule, run_options, yes_option

RUNTIMES = ("python", "node", "go")
_URL_RE = re.compile(r"^https?://[A-Za-z0-9._~:/?#\[\]@!&'()*+,;=%-]+$")


def _subnet(ctx, param, value):
    if value is None:
        return None
    text = value.strip()
    rule_text = ("must be the bridge's own IPv4 address with a prefix length from 8 to 30, "
                 "such as 10.77.0.1/24")
    try:
        iface = ipaddress.IPv4Interface(text)
    except ValueError:
        raise click.BadParameter("%s (got %r)" % (rule_text, value), ctx=ctx, param=param)
    if "/" not in text or not 8 <= iface.network.prefixlen <= 30:
        raise click.BadParameter("%s (got %r)" % (rule_text, value), ctx=ctx, param=param)
    if iface.ip in (iface.network.network_address, iface.network.broadcast_address):
        raise click.BadParameter(
            "%s is the network or broadcast address of %s; give the bridge's own address, such as %s/%d"
            % (iface.ip, iface.network, next(iface.network.hosts()), iface.network.prefixlen),
            ctx=ctx, param=param)
    if not iface.ip.is_private:
        raise click.BadParameter("must be a private address (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16), got %r"
                                 % value, ctx=ctx, param=param)
    return "%s/%d" % (iface.ip, iface.network.prefixlen)


def _ipv6(ctx, param, value):
    if value is None or value == "none":
        return value
    try:
        iface = ipaddress.IPv6Interface(value)
    except ValueError:
        raise click.BadParameter("must be an IPv6 address with a prefix, such as fd42:77::1/64, or 'none' (got %r)"
                                 % value, ctx=ctx, param=param)
    if "/" not in value:
        raise click.BadParameter("needs a prefix length, such as fd42:77::1/64 (got %r)" % value, ctx=ctx, param=param)
    return "%s/%d" % (iface.ip, iface.network.prefixlen)


def _ip(ctx, param, value):
    if value is None:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise click.BadParameter("must be an IP address such as 127.0.0.1 (got %r)" % value, ctx=ctx, param=param)


def _url(ctx, param, value):
    if value is None or value == "":
        return value
    if not _URL_RE.match(value):
        raise click.BadParameter("must be an http:// or https:// URL (got %r)" % value, ctx=ctx, param=param)
    return value


def _runtimes(ctx, param, value):
    if value is None:
        return None
    names = [name.strip() for name in value.split(",") if name.strip()]
    if value.strip() in ("", "none"):
        return []
    bad = [name for name in names if name not in RUNTIMES]
    if bad:
        raise click.BadParameter("must be a comma-separated list of %s, or 'none' (unknown: %s)"
                                 % (", ".join(RUNTIMES), ", ".join(bad)), ctx=ctx, param=param)
    return list(dict.fromkeys(names))


@click.command()
@click.option("--subnet", callback=_subnet, metavar="ADDRESS/PREFIX",
              help="The bridge's IPv4 address and prefix; the default 10.77.0.1/21 holds 2045 containers.")
@click.option("--nat/--no-nat", default=None,
              help="NAT the containers' outbound traffic (default on; off on hosts with no outside network).")
@click.option("--ipv6", callback=_ipv6, metavar="ADDRESS/PREFIX|none", help="The bridge's IPv6 address, or none (default).")
@click.option("--dns-address", callback=_ip, metavar="IP", help="Address PowerDNS answers on (default 127.0.0.1).")
@click.option("--dns-port", callback=rule("port"), metavar="PORT",
              help="Port PowerDNS answers on (default 5300; not 53 on the bridge, which LXD's dnsmasq holds).")
@click.option("--public-address", callback=_ip, metavar="IP",
              help="Address project DNS records point at (default: the bridge address; real hosts give their public IP).")
@click.option("--with-pebble/--without-pebble", "pebble", default=None,
              help="Run pebble, a local ACME server, for tests (default off).")
@click.option("--pool-driver", type=click.Choice(["auto", "btrfs", "dir"]),
              help="LXD storage driver (default auto: btrfs on a loop file where possible, else dir).")
@click.option("--image-server", callback=_url, metavar="URL",
              help="An LXD image server to copy images from instead of building them.")
@click.option("--mirror", callback=_url, metavar="URL",
              help="Debian mirror for building images (default: the host's apt source).")
@click.option("--runtimes", callback=_runtimes, metavar="LIST",
              help="Runtime images to build, comma-separated from python,node,go, or none (default all).")
@yes_option("Set up this host as the lxdctl platform (installs and starts LXD, PowerDNS, PostgreSQL, "
            "MariaDB, Redis, memcached and nginx)?")
@run_options
def init(subnet, nat, ipv6, dns_address, dns_port, public_address, pebble, pool_driver, image_server, mirror,
         runtimes, dry_run, verbose):
    """Set up this host: LXD (pool, bridge, profile, images), PowerDNS, PostgreSQL, MariaDB,
    Redis, memcached, nginx and optionally pebble, then write /etc/lxdctl/platform.json.

    Safe to rerun: generated credentials are kept and a second run changes nothing.

    \b
    Examples:
      lxdctl init --yes                               a real host (NAT on)
      lxdctl init --yes --no-nat --with-pebble        a test host without outside network
      lxdctl init --dry-run --subnet 10.88.0.1/24     show what would change
    """
    given = init_extravars(subnet=subnet, nat=nat, ipv6=ipv6, dns_address=dns_address, dns_port=dns_port,
                           public_address=public_address, pebble=pebble, pool_driver=pool_driver,
                           image_server=image_server, mirror=mirror, runtimes=runtimes)
    extravars = dict(remembered_settings(), **given)
    execute("bootstrap", extravars, dry_run=dry_run, verbose=verbose)
    if not dry_run:
        remember_settings(extravars)
        click.echo("platform ready: see `lxdctl platform status`", err=True)


_OPTION_VARS = {
    "subnet": "platform_lxd_network_address",
    "nat": "platform_lxd_network_nat",
    "ipv6": "platform_lxd_network_ipv6",
    "dns_address": "platform_dns_address",
    "dns_port": "platform_dns_port",
    "public_address": "platform_public_address",
    "pebble": "platform_pebble_enabled",
    "pool_driver": "platform_lxd_pool_driver",
    "image_server": "platform_image_server",
    "mirror": "platform_images_mirror",
    "runtimes": "platform_images_runtimes",
}


def init_extravars(**options):
    """Extra vars for playbooks/bootstrap.yml: only the options that were given."""
    return {_OPTION_VARS[name]: value for name, value in options.items() if value is not None}


def settings_path():
    return os.path.join(os.path.dirname(module_utils("_platform_config").config_path()), "init-settings.json")


def remembered_settings():
    """The options of the last successful ``lxdctl init`` (only known role variables)."""
    try:
        with open(settings_path()) as handle:
            saved = json.load(handle)
    except (OSError, ValueError):
        return {}
    known = set(_OPTION_VARS.values())
    return {key: value for key, value in saved.items() if key in known} if isinstance(saved, dict) else {}


def remember_settings(extravars):
    path = settings_path()
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(extravars, handle, indent=2, sort_keys=True)
    os.replace(tmp, path)

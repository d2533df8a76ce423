"""``lxdctl dns``: records under the platform's managed zones.

    lxdctl dns add <fqdn> --type A|AAAA|CNAME|MX|TXT --content C [--ttl N] [--priority N] [--project P]
    lxdctl dns update <fqdn> --type T --content C [--ttl N] [--priority N]     (replaces the rrset)
    lxdctl dns delete <fqdn> --type T
    lxdctl dns list [--zone Z] [--output json]

Changes run ``playbooks/dns_record.yml`` (role ``dns``): the managed zone is created when
missing, the rrset set with powerdns_record, and the project's dns_records row written.
``list`` reads PowerDNS's API and the state directly.
"""
import click

from lxdctl.collection import module_utils
from lxdctl.execute import execute
from lxdctl.options import output_option, rule, run_options
from lxdctl.output import emit

TYPES = ("A", "AAAA", "CNAME", "MX", "TXT")


def _errors():
    return module_utils("_errors")


def managed_zones():
    config = module_utils("_platform_config")
    try:
        zones = (config.load().get("dns") or {}).get("managed_zones") or []
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    return [z.lower().rstrip(".") for z in zones]


def zone_for(fqdn, zones=None):
    """The longest managed zone that holds ``fqdn`` (no trailing dots), or None."""
    best = None
    for zone in zones if zones is not None else managed_zones():
        if (fqdn == zone or fqdn.endswith("." + zone)) and (best is None or len(zone) > len(best)):
            best = zone
    return best


def check_content(rtype, content):
    names = module_utils("_names")
    try:
        return names.record_content(rtype, content, "--content")
    except _errors().ValidationError as exc:
        raise click.BadParameter(exc.rule, param_hint="--content")


def pdns():
    client = module_utils("_pdns")
    try:
        return client.PowerDNS({})
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)


def current_rrset(fqdn, rtype, zone):
    """The contents of the rrset now, or None."""
    try:
        data = pdns().get_zone(zone + ".")
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    for rrset in (data or {}).get("rrsets") or []:
        if rrset["name"] == fqdn + "." and rrset["type"] == rtype:
            return sorted(r["content"] for r in rrset.get("records") or [])
    return None


def open_state():
    state = module_utils("_state")
    try:
        return state.StateStore.open()
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)


def record_owners():
    """``{(name with dot, type): project}`` from the state's dns_records."""
    store = open_state()
    owners = {}
    try:
        for project in store.list_projects():
            for row in store.list_dns_records(project["name"]):
                owners[(row["name"], row["type"])] = project["name"]
    finally:
        store.close()
    return owners


def require_project(name):
    store = open_state()
    try:
        if store.get_project(name) is None:
            raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)
    finally:
        store.close()


def _resolve(fqdn, project):
    zone = zone_for(fqdn)
    if zone is None:
        raise click.ClickException("%s is not under any zone this platform manages (%s)"
                                   % (fqdn, ", ".join(managed_zones()) or "none configured"))
    if project:
        require_project(project)
    return zone


def _run(fqdn, rtype, content, ttl, priority, project, state, dry_run, verbose):
    extravars = {"dns_fqdn": fqdn, "dns_type": rtype, "dns_state": state}
    if content is not None:
        extravars.update(dns_content=content, dns_ttl=ttl)
    if priority is not None:
        extravars["dns_priority"] = priority
    if project:
        extravars["dns_project"] = project
    return execute("dns_record", extravars, dry_run=dry_run, verbose=verbose)


def record_options(func):
    func = click.option("--project", callback=rule("project_name"),
                        help="The project the record belongs to (recorded in its state).")(func)
    func = click.option("--priority", type=click.IntRange(0, 65535), help="MX preference (default 10).")(func)
    func = click.option("--ttl", type=click.IntRange(1, 2147483647), default=3600, show_default=True,
                        help="Time to live, seconds.")(func)
    func = click.option("--content", required=True, help="IPv4 (A), IPv6 (AAAA), host name (CNAME, MX) or text (TXT).")(func)
    func = click.option("--type", "rtype", type=click.Choice(TYPES, case_sensitive=False), required=True,
                        callback=lambda c, p, v: v.upper() if v else v, help="The record type.")(func)
    func = click.argument("fqdn", callback=rule("domain"))(func)
    return func


@click.group()
def dns():
    """DNS records under the platform's managed zones."""


@dns.command("add")
@record_options
@run_options
def add(fqdn, rtype, content, ttl, priority, project, dry_run, verbose):
    """Add the record FQDN (its zone is created if it is a managed one)."""
    canonical = check_content(rtype, content)
    if priority is not None and rtype != "MX":
        raise click.BadParameter("only MX records have a priority", param_hint="--priority")
    zone = _resolve(fqdn, project)
    existing = current_rrset(fqdn, rtype, zone)
    if existing is not None and existing != [canonical]:
        raise click.ClickException("%s %s exists already (%s); use `lxdctl dns update` to replace it"
                                   % (fqdn, rtype, ", ".join(existing)))
    _run(fqdn, rtype, content, ttl, priority, project, "present", dry_run, verbose)
    click.echo("%s%s %s %s (zone %s)" % ("would set " if dry_run else "", fqdn, rtype, canonical, zone))


@dns.command("update")
@record_options
@run_options
def update(fqdn, rtype, content, ttl, priority, project, dry_run, verbose):
    """Replace the rrset FQDN/TYPE with the new content."""
    canonical = check_content(rtype, content)
    if priority is not None and rtype != "MX":
        raise click.BadParameter("only MX records have a priority", param_hint="--priority")
    zone = _resolve(fqdn, project)
    if current_rrset(fqdn, rtype, zone) is None:
        raise click.ClickException("there is no %s record %s; use `lxdctl dns add`" % (rtype, fqdn))
    project = project or record_owners().get((fqdn + ".", rtype))
    _run(fqdn, rtype, content, ttl, priority, project, "present", dry_run, verbose)
    click.echo("%s%s %s %s (zone %s)" % ("would set " if dry_run else "", fqdn, rtype, canonical, zone))


@dns.command("delete")
@click.argument("fqdn", callback=rule("domain"))
@click.option("--type", "rtype", type=click.Choice(TYPES, case_sensitive=False), required=True,
              callback=lambda c, p, v: v.upper() if v else v, help="The record type.")
@click.option("--project", callback=rule("project_name"), help="The project the record belongs to.")
@run_options
def delete(fqdn, rtype, project, dry_run, verbose):
    """Delete the rrset FQDN/TYPE."""
    _resolve(fqdn, project)
    project = project or record_owners().get((fqdn + ".", rtype))
    _run(fqdn, rtype, None, None, None, project, "absent", dry_run, verbose)


@dns.command("list")
@click.option("--zone", callback=rule("domain"), help="Only this zone.")
@output_option
def list_records(zone, output):
    """List the records of the managed zones (or of one zone)."""
    client = pdns()
    zones = [zone] if zone else managed_zones()
    owners = record_owners()
    rows = []
    try:
        for name in zones:
            data = client.get_zone(name + ".")
            if data is None:
                if zone:
                    raise click.ClickException("zone %s does not exist in PowerDNS" % zone)
                continue
            for rrset in sorted(data.get("rrsets") or [], key=lambda r: (r["name"], r["type"])):
                for record in sorted(rrset.get("records") or [], key=lambda r: r["content"]):
                    rows.append({"zone": name, "name": rrset["name"].rstrip("."), "type": rrset["type"],
                                 "ttl": rrset.get("ttl"), "content": record["content"],
                                 "disabled": bool(record.get("disabled")),
                                 "project": owners.get((rrset["name"], rrset["type"]))})
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    emit(rows, output, columns=["name", "type", "ttl", "content", "project"])

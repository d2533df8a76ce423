"""``lxdctl project create|list|status|delete`` and the top-level aliases of the same commands.

``create`` and ``delete`` run ``playbooks/project_create.yml`` / ``project_delete.yml`` (role
``project``); ``list`` and ``status`` only read the state store (and, for ``status``, LXD and
the certificate file), so they are fast and change nothing.
"""
import datetime
import os

import click

from lxdctl.collection import module_utils
from lxdctl.commands.env import open_state, read_env_file
from lxdctl.execute import execute
from lxdctl.options import output_option, rule, run_options, yes_option
from lxdctl.output import emit

RUNTIMES = ("node", "python", "go")
DATABASES = ("postgres", "mysql", "mongo")
CACHES = ("redis", "memcached")


def _platform_config():
    config = module_utils("_platform_config")
    errors = module_utils("_errors")
    try:
        return config.load()
    except errors.LxdctlError:
        return {}


def check_domain(ctx, param, value):
    """The domain rule of ``_names``, then: it must fall under a zone this platform manages."""
    value = rule("domain")(ctx, param, value)
    if value is None:
        return None
    zones = [z.lower().rstrip(".") for z in (_platform_config().get("dns") or {}).get("managed_zones") or []]
    if not zones:
        return value  # no platform configuration to check against: the playbook's preflight does
    if not any(value.endswith("." + zone) for zone in zones):
        raise click.BadParameter("%s is not under any zone this platform manages (%s)" % (value, ", ".join(zones)),
                                 ctx=ctx, param=param)
    return value


def check_git(ctx, param, value):
    if value is None:
        return None
    if not value or value.startswith("-") or value.lower().startswith(("ext::", "fd::")) or \
            any(ch in value for ch in "\r\n\x00"):
        raise click.BadParameter("must be a repository URL or path; it must not start with '-', ext:: or fd::",
                                 ctx=ctx, param=param)
    return value


def check_branch(ctx, param, value):
    import re

    if value is None:
        return None
    if not value or value.startswith("-") or re.search(r"[\s~^:?*\[\\\x00-\x1f\x7f]|\.\.|@\{|^/|/$|\.lock$", value):
        raise click.BadParameter("must be a plain git branch name", ctx=ctx, param=param)
    return value


def without_empty(extravars):
    """Leave out empty strings, so the role's defaults apply: ansible-core 2.19 loads the
    runner's ``!unsafe ''`` as None, which would replace a default of ``""`` with null."""
    return dict((key, value) for key, value in extravars.items() if value != "")


@click.group()
def project():
    """Create, list, inspect and delete projects."""


@project.command("create")
@click.argument("name", callback=rule("project_name"))
@click.option("--db", type=click.Choice(DATABASES), help="A database for the project (default: none).")
@click.option("--cache", type=click.Choice(CACHES), help="A cache for the project (default: none).")
@click.option("--runtime", type=click.Choice(RUNTIMES), default="node", show_default=True, help="The container image.")
@click.option("--port", default="3000", show_default=True, metavar="PORT", callback=rule("port"), help="The app's port in the container.")
@click.option("--domain", callback=check_domain, metavar="DOMAIN", help="The project's domain (default NAME.<default zone>).")
@click.option("--ssl", is_flag=True, help="Get a certificate through ACME and redirect http to https.")
@click.option("--git", "git_url", callback=check_git, metavar="URL", help="The git repository to deploy from.")
@click.option("--branch", default="main", show_default=True, metavar="BRANCH", callback=check_branch, help="The branch to deploy.")
@click.option("--env", "env_file", metavar="FILE", callback=read_env_file, help="A file of KEY=VALUE lines for the app.")
@click.option("--cpu", type=click.IntRange(1, 1024), metavar="N", help="CPU limit (cores, 1-1024).")
@click.option("--memory", callback=rule("size"), metavar="SIZE", help="Memory limit, e.g. 512MiB.")
@click.option("--disk", callback=rule("size"), metavar="SIZE", help="Root disk size, e.g. 10GiB.")
@run_options
def create(name, db, cache, runtime, port, domain, ssl, git_url, branch, env_file, cpu, memory, disk, dry_run, verbose):
    """Create project NAME: container, database, cache, DNS name, nginx site and env.

    Rerunning it completes a project whose creation failed, and changes nothing on a
    complete one.
    """
    extravars = {
        "project_action": "create",
        "project_name": name,
        "project_db": db or "none",
        "project_cache": cache or "none",
        "project_runtime": runtime,
        "project_port": port,
        "project_domain": domain or "",
        "project_ssl": bool(ssl),
        "project_git": git_url or "",
        "project_branch": branch,
        "project_env": env_file or {},
        "project_cpu": str(cpu) if cpu else "",
        "project_memory": memory or "",
        "project_disk": disk or "",
        "lxdctl_owner_pid": os.getpid(),
    }
    result = execute("project_create", without_empty(extravars), dry_run=dry_run, verbose=verbose)
    summary = result.outputs.get("project") or {}
    if summary and not dry_run:
        emit(summary, "table")


@project.command("list")
@output_option
def list_projects(output):
    """Every project with its status, runtime, domain and address (from the state store)."""
    errors = module_utils("_errors")
    store = open_state()
    try:
        rows = store.list_projects()
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    projects = [_list_row(row) for row in rows]
    emit(projects, output, columns=["name", "status", "runtime", "domain", "address", "db", "cache"])


def _list_row(row):
    return {
        "name": row["name"],
        "status": row["status"],
        "runtime": row.get("runtime"),
        "domain": row.get("domain"),
        "address": row.get("address"),
        "url": _url(row),
        "db": row.get("db_type"),
        "cache": row.get("cache_type"),
        "port": row.get("port"),
    }


def _url(row):
    if not row.get("domain"):
        return None
    return ("https://" if row.get("ssl") else "http://") + row["domain"]


@project.command("status")
@click.argument("name", callback=rule("project_name"))
@output_option
def status(name, output):
    """Container state and resources, database, cache, DNS, site, TLS expiry and last deployment."""
    errors = module_utils("_errors")
    store = open_state()
    try:
        row = store.get_project(name)
        if row is None:
            raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)
        databases = store.list_databases(name)
        records = store.list_dns_records(name)
        deployment = store.last_deployment(name)
    except errors.LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    config = _platform_config()
    info = {
        "name": row["name"],
        "status": row["status"],
        "runtime": row.get("runtime"),
        "port": row.get("port"),
        "url": _url(row),
        "domain": row.get("domain"),
        "git": {"repository": row.get("git_repository"), "branch": row.get("git_branch")},
        "limits": {"cpu": row.get("cpu"), "memory": row.get("memory"), "disk": row.get("disk")},
        "container": _container(row.get("container_name") or "lxdctl-%s" % name),
        "databases": [_database(d) for d in databases if d["type"] not in ("redis", "memcached")],
        "cache": next(({"type": d["type"], "name": d["name"], "host": d.get("host"), "port": d.get("port")}
                       for d in databases if d["type"] in ("redis", "memcached")), None),
        "dns": [{"name": r["name"], "type": r["type"], "content": r["content"], "ttl": r["ttl"]} for r in records],
        "site": _site(name, config),
        "tls": _tls(row, config),
        "last_deployment": _deployment(deployment),
    }
    if output == "json":
        emit(info, output)
        return
    container = info["container"]
    flat = {
        "name": info["name"],
        "status": info["status"],
        "url": info["url"],
        "runtime": "%s (port %s)" % (info["runtime"], info["port"]),
        "container": "%s %s %s" % (container["name"], container["status"], container.get("ipv4") or ""),
        "resources": _resources(container),
        "databases": ", ".join("%s %s@%s:%s" % (d["type"], d["name"], d["host"], d["port"]) for d in info["databases"])
        or None,
        "cache": info["cache"] and "%s %s:%s" % (info["cache"]["type"], info["cache"]["host"], info["cache"]["port"]),
        "dns": ", ".join("%s %s %s" % (r["name"], r["type"], r["content"]) for r in info["dns"]) or None,
        "site": info["site"]["path"] if info["site"]["exists"] else "missing",
        "tls": info["tls"] and ("expires %s" % info["tls"]["expires"] if info["tls"].get("expires")
                                else info["tls"].get("error")),
        "git": info["git"]["repository"] and "%s (%s)" % (info["git"]["repository"], info["git"]["branch"]),
        "last deployment": info["last_deployment"] and "%s %s %s" % (
            info["last_deployment"]["status"], info["last_deployment"].get("version") or "",
            info["last_deployment"].get("completed_at") or info["last_deployment"].get("started_at") or ""),
    }
    emit(flat, "table")


def _database(row):
    return {"type": row["type"], "name": row["name"], "host": row.get("host"), "port": row.get("port"),
            "username": row.get("username"), "connection_string": row.get("connection_string")}


def _container(name):
    """The instance's state from LXD, read directly (pylxd over the socket)."""
    out = {"name": name, "status": "missing"}
    try:
        lxd = module_utils("_lxd")
        client = lxd.connect({})
        instance = client.instances.get(name)
    except Exception as exc:  # noqa: BLE001 - status must still show the rest
        if type(exc).__name__ == "NotFound":
            return out
        out["status"] = "unknown"
        out["error"] = str(getattr(exc, "msg", exc)).splitlines()[0][:200]
        return out
    out["status"] = instance.status
    out["config"] = dict((k, v) for k, v in instance.config.items() if k.startswith(("limits.", "user.")))
    try:
        state = instance.state()
    except Exception:  # noqa: BLE001
        return out
    addresses = []
    for nic, data in (state.network or {}).items():
        if nic == "lo":
            continue
        for addr in data.get("addresses") or []:
            if addr.get("family") == "inet" and addr.get("scope") == "global":
                addresses.append(addr["address"])
    out["ipv4"] = addresses[0] if addresses else None
    memory = state.memory or {}
    out["memory_bytes"] = memory.get("usage")
    out["cpu_seconds"] = round(((state.cpu or {}).get("usage") or 0) / 1e9, 2)
    out["processes"] = state.processes
    disk = state.disk or {}
    out["disk_bytes"] = (disk.get("root") or {}).get("usage")
    return out


def _resources(container):
    if container.get("status") != "Running":
        return None
    parts = []
    if container.get("memory_bytes") is not None:
        parts.append("memory %.0f MiB" % (container["memory_bytes"] / 1048576.0))
    if container.get("cpu_seconds") is not None:
        parts.append("cpu %ss" % container["cpu_seconds"])
    if container.get("disk_bytes") is not None:
        parts.append("disk %.0f MiB" % (container["disk_bytes"] / 1048576.0))
    if container.get("processes") is not None:
        parts.append("%s processes" % container["processes"])
    limits = container.get("config") or {}
    if limits.get("limits.cpu") or limits.get("limits.memory"):
        parts.append("limits cpu=%s memory=%s" % (limits.get("limits.cpu", "-"), limits.get("limits.memory", "-")))
    return ", ".join(parts)


def _site(name, config):
    sites_dir = (config.get("nginx") or {}).get("sites_dir") or "/etc/nginx/lxdctl-sites"
    path = os.path.join(sites_dir, "%s.conf" % name)
    return {"path": path, "exists": os.path.isfile(path)}


def _tls(row, config):
    if not row.get("ssl") or not row.get("domain"):
        return None
    cert_dir = (config.get("nginx") or {}).get("cert_dir") or "/etc/lxdctl/certs"
    path = os.path.join(cert_dir, "%s.crt" % row["domain"])
    try:
        from cryptography import x509

        with open(path, "rb") as handle:
            cert = x509.load_pem_x509_certificate(handle.read())
    except (IOError, OSError) as exc:
        return {"path": path, "expires": None, "error": "no certificate: %s" % (exc.strerror or exc)}
    except ValueError as exc:
        return {"path": path, "expires": None, "error": "unreadable certificate: %s" % exc}
    expires = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    days = (expires - datetime.datetime.now(datetime.timezone.utc)).days
    return {"path": path, "expires": expires.strftime("%Y-%m-%dT%H:%M:%SZ"), "days_left": days}


def _deployment(row):
    if not row:
        return None
    keep = ("id", "version", "git_commit", "status", "deploy_type", "started_at", "completed_at", "deployed_by",
            "error_message")
    return dict((k, row.get(k)) for k in keep)


@project.command("delete")
@click.argument("name", callback=rule("project_name"))
@click.option("--keep-data", is_flag=True, help="Keep the database(s) and the cache data.")
@yes_option("Delete project {name} with its container, DNS name, site and certificate"
            " (and its data unless --keep-data)?")
@run_options
def delete(name, keep_data, dry_run, verbose):
    """Delete project NAME and everything it owns.  A rerun is safe."""
    execute("project_delete", {"project_action": "delete", "project_name": name, "project_keep_data": bool(keep_data),
                               "lxdctl_owner_pid": os.getpid()}, dry_run=dry_run, verbose=verbose)

#!/usr/bin/env python3
# -*- coding: utf-8 -*-
"""Work out what a deploy, rollback, promote or abort does (read-only), on the platform host.

The deploy role runs it with the controller's Python; it reads the project and its
deployments through the collection's state store API (``module_utils/_state.py``) and prints
``{"plan": {...}}`` or ``{"failed": true, "msg": ...}`` (exit 1).

The deployments table is the record of what serves.  Each successful deployment's
``metadata.live`` lists the upstreams nginx sends traffic to after it, and
``metadata.target`` the container, slot, port, release and address of the release it started.
The current deployment is the latest one with status ``success``, or a canary that is still
``deploying``.  A standard deploy and a canary go into the other slot of the live container
(two systemd units on ports ``port`` and ``port + offset``); a blue-green deploy goes into
the other container (``lxdctl-<name>`` and ``lxdctl-<name>-green``).
"""
import argparse
import json
import os
import re
import sys


class LxdctlError(Exception):
    """Replaced by the collection's own error type once ``load_collection`` ran."""

    def __init__(self, msg):
        super(LxdctlError, self).__init__(msg)
        self.msg = msg


_names = _state = _platform_config = None


def load_collection(path):
    """Import the collection's state store and rules from ``path`` (a collections directory)."""
    global _names, _state, _platform_config, LxdctlError
    if path and path not in sys.path:
        sys.path.insert(0, path)
    from ansible_collections.lxdctl.platform.plugins.module_utils import _errors, _names as names, _state as state
    from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config as config
    _names, _state, _platform_config, LxdctlError = names, state, config, _errors.LxdctlError

VERSION_RE = re.compile(r"^v([1-9][0-9]{0,8})$")
SLOTS = ("blue", "green")


def version_number(version):
    match = VERSION_RE.match(version or "")
    return int(match.group(1)) if match else 0


def metadata(row):
    meta = row.get("metadata")
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            meta = {}
    return meta if isinstance(meta, dict) else {}


def current_row(rows):
    """The deployment that describes what serves now (rows newest first)."""
    for row in rows:
        meta = metadata(row)
        if not meta.get("live"):
            continue
        if row["status"] == "success":
            return row
        if row["status"] == "deploying" and row["deploy_type"] == "canary" and meta.get("canary_live"):
            return row
    return None


def built_releases(rows):
    """Releases that were built and passed their health check once: version -> row (oldest first wins)."""
    releases = {}
    for row in reversed(rows):
        meta = metadata(row)
        if row["deploy_type"] == "rollback" or not meta.get("healthy"):
            continue
        releases.setdefault(row["version"], row)
    return releases


def other(slot):
    return "green" if slot == "blue" else "blue"


def slot_port(port, slot, offset):
    return int(port) + (int(offset) if slot == "green" else 0)


def make_plan(project_row, rows, action, strategy, canary_percent, to_version, offset, site):
    name = project_row["name"]
    primary = project_row.get("container_name") or "lxdctl-%s" % name
    secondary = primary + "-green"
    port = int(project_row.get("port") or 3000)
    cur = current_row(rows)
    cur_meta = metadata(cur) if cur else {}
    cur_target = cur_meta.get("target") if cur else None
    canary_in_progress = bool(cur and cur["status"] == "deploying")
    stale = [r["id"] for r in rows if r["status"] in ("pending", "building", "deploying")
             and not (cur is not None and r["id"] == cur["id"])]
    plan = dict(project=name, action=action, port=port, primary=primary, secondary=secondary, site=site,
                current=cur_target, current_id=cur["id"] if cur else None,
                current_live=cur_meta.get("live") or [], current_meta=cur_meta, stale_ids=stale, runtime=project_row.get("runtime") or "",
                git_repository=project_row.get("git_repository") or "", git_branch=project_row.get("git_branch") or "main",
                domain=project_row.get("domain") or "", canary_id=None, previous_target=None)
    if action == "deploy":
        if canary_in_progress:
            raise LxdctlError("a canary of %s (%s at %s%%) is in progress: finish it with --promote or --abort first"
                              % (name, cur["version"], cur_meta.get("canary_percent")))
        numbers = [version_number(r["version"]) for r in rows if r["deploy_type"] != "rollback"]
        version = "v%d" % (max(numbers + [0]) + 1)
        if cur_target is None:
            target = dict(container=primary, slot="blue")
            exclusive = True
        elif strategy == "blue_green":
            target = dict(container=secondary if cur_target["container"] == primary else primary, slot="blue")
            exclusive = True
        else:
            target = dict(container=cur_target["container"], slot=other(cur_target["slot"]))
            exclusive = False
        target.update(port=slot_port(port, target["slot"], offset), release=version)
        plan.update(version=version, deploy_type=strategy if cur_target is not None or strategy != "canary" else "standard",
                    target=target, exclusive=exclusive,
                    create_container=target["container"] == secondary)
        if strategy == "canary" and cur_target is None:
            raise LxdctlError("--canary needs a release that already serves: deploy %s once without --canary" % name)
        return plan
    if action == "rollback":
        if canary_in_progress:
            raise LxdctlError("a canary of %s is in progress: use --abort to send all traffic back" % name)
        if cur_target is None:
            raise LxdctlError("%s has no successful deployment to roll back from" % name)
        releases = built_releases(rows)
        current_version = cur_target["release"]
        if to_version:
            if to_version not in releases:
                raise LxdctlError("release %s of %s does not exist or never passed its health check; releases: %s"
                                  % (to_version, name, ", ".join(sorted(releases, key=version_number)) or "none"))
            if to_version == current_version:
                raise LxdctlError("release %s already serves %s" % (to_version, name))
            version = to_version
        else:
            older = [v for v in releases if version_number(v) < version_number(current_version)]
            if not older:
                raise LxdctlError("%s has no release before %s to roll back to" % (name, current_version))
            version = max(older, key=version_number)
        where = metadata(releases[version])["target"]["container"]
        if where == cur_target["container"]:
            target = dict(container=where, slot=other(cur_target["slot"]))
            exclusive = False
        else:
            target = dict(container=where, slot="blue")
            exclusive = True
        target.update(port=slot_port(port, target["slot"], offset), release=version)
        plan.update(version=version, deploy_type="rollback", target=target, exclusive=exclusive,
                    create_container=False, git_commit=releases[version].get("git_commit") or "")
        return plan
    # promote / abort
    if not canary_in_progress:
        raise LxdctlError("%s has no canary in progress to %s" % (name, "promote" if action == "promote" else "abort"))
    previous = cur_meta.get("previous") or {}
    plan.update(version=cur["version"], deploy_type="canary", canary_id=cur["id"], target=cur_target,
                previous_target=previous, exclusive=False, create_container=False,
                canary_percent=cur_meta.get("canary_percent"))
    return plan


def site_settings(project_row, config_path):
    domain = project_row.get("domain")
    if not domain:
        raise LxdctlError("project %s has no domain in the state" % project_row["name"])
    site = dict(name=project_row["name"], server_names=[domain], tls_certificate=None, tls_certificate_key=None)
    if project_row.get("ssl"):
        cert_dir = "/etc/lxdctl/certs"
        if _platform_config is not None:
            try:
                cert_dir = _platform_config.section("nginx", config_path).get("cert_dir") or cert_dir
            except Exception:  # noqa: BLE001 - the default is fine when the file is unreadable
                pass
        site.update(tls_certificate="%s/%s.crt" % (cert_dir, domain), tls_certificate_key="%s/%s.key" % (cert_dir, domain))
    return site


def main(argv=None):
    parser = argparse.ArgumentParser(prog="deploy_plan")
    parser.add_argument("--collections-path", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--action", choices=["deploy", "rollback", "promote", "abort"], default="deploy")
    parser.add_argument("--strategy", choices=["standard", "blue_green", "canary"], default="standard")
    parser.add_argument("--canary-percent", type=int, default=10)
    parser.add_argument("--to-version", default="")
    parser.add_argument("--slot-port-offset", type=int, default=1)
    parser.add_argument("--config-path", default=os.environ.get("LXDCTL_CONFIG") or "/etc/lxdctl/platform.json")
    args = parser.parse_args(argv)
    try:
        load_collection(args.collections_path)
        _names.project_name(args.project, "project")
        if args.to_version and not VERSION_RE.match(args.to_version):
            raise LxdctlError("--to: a release version looks like v3, got %r" % args.to_version)
        if not 1 <= args.canary_percent <= 99:
            raise LxdctlError("--canary: the percentage must be from 1 to 99, got %s" % args.canary_percent)
        with _state.StateStore.open() as store:
            row = store.get_project(args.project)
            if row is None:
                raise LxdctlError("project %s does not exist: create it with `lxdctl create %s`" % (args.project, args.project))
            if row.get("status") != "running":
                raise LxdctlError("project %s is %s, not running: complete it with `lxdctl create %s` first"
                                  % (args.project, row.get("status"), args.project))
            rows = store.list_deployments(args.project, limit=1000)
        plan = make_plan(row, rows, args.action, args.strategy, args.canary_percent, args.to_version,
                         args.slot_port_offset, site_settings(row, args.config_path))
    except LxdctlError as err:
        sys.stdout.write(json.dumps(dict(failed=True, msg=err.msg)) + "\n")
        return 1
    sys.stdout.write(json.dumps(dict(plan=plan), default=str) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

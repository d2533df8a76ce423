#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_image_build
short_description: Build an lxdctl container image with debootstrap and import it into LXD
description:
  - Makes sure the LXD image alias O(alias) exists. When it is missing (or O(force) is set) the
    image is built locally, so that hosts without an image server (air-gapped, or this kind of
    test machine) still get images.
  - The base image is Debian minbase plus C(systemd-sysv), C(iproute2), C(ifupdown),
    C(isc-dhcp-client), C(ca-certificates), C(git), C(curl) and C(python3) (so Ansible can run
    inside containers), with an C(eth0) DHCP stanza. Runtime images add C(python3-venv
    python3-pip) (python), C(nodejs npm) (node) or C(golang-go) (go).
  - The base root filesystem is built once with debootstrap and cached as a tarball under
    O(cache_dir); runtime images unpack a copy of it and add their packages with C(apt-get) in a
    chroot. With O(force) on the base runtime the cache is rebuilt too.
  - The image carries the properties C(lxdctl.runtime), C(lxdctl.build_date),
    C(lxdctl.packages) and C(lxdctl.recipe), and a template that sets C(/etc/hostname) to the
    instance name.
  - The base root filesystem has the system user C(app) with its group and the home C(/srv/app),
    the user the project role runs apps as by default, so creating a project needs no C(useradd).
  - Containers are kept light, since one host holds hundreds of idle ones - no console getty
    (nobody logs in on a container's console; C(lxc exec) is the way in), and a journal in
    2 MiB files of at most 32 MiB in all, so an idle container's journal takes 2 MiB of disk
    and its journald less memory.
  - A locally built image whose C(lxdctl.recipe) is not the module's recipe version (an image
    built by an older lxdctl) is rebuilt, so upgrading and rerunning C(lxdctl init) brings the
    images up to date. Images copied from O(server) are left as they are.
  - With O(server) the image is copied from an LXD (simplestreams) image server instead of being
    built. The test suite covers it against a simplestreams tree served over http on loopback
    (tests/integration/test_image_server.py).
  - Needs root on the LXD host (debootstrap, chroot, mount) and C(debootstrap) installed.
version_added: "0.1.0"
author: lxdctl maintainers
options:
  runtime:
    description: Which image to build.
    type: str
    choices: [base, python, node, go]
    default: base
  alias:
    description: The local image alias. Defaults to C(lxdctl-<runtime>).
    type: str
  state:
    description: Whether the image exists. V(absent) deletes the image the alias points at.
    type: str
    choices: [present, absent]
    default: present
  force:
    description: Rebuild (and re-point the alias) even when the alias exists.
    type: bool
    default: false
  refresh_rootfs:
    description:
      - Rebuild the cached base rootfs with debootstrap before building (fresh packages).
      - Defaults to V(true) when O(force) is set for O(runtime=base), else V(false).
    type: bool
  mirror:
    description:
      - The Debian mirror for debootstrap and apt-get, e.g. C(http://deb.debian.org/debian).
      - Empty means the host's own apt source (C(/etc/apt/sources.list) and the deb822
        C(/etc/apt/sources.list.d/*.sources) files). The role variable is C(platform_images_mirror).
    type: str
    default: ""
  suite:
    description: The Debian release to build.
    type: str
    default: bookworm
  cache_dir:
    description: Where the cached base rootfs tarball and the build directories live.
    type: path
    default: /var/cache/lxdctl/images
  server:
    description:
      - An LXD simplestreams image server (C(https://...)) to copy the image from instead of building it.
      - Empty means build locally.
    type: str
    default: ""
  server_alias:
    description: The image's alias on O(server). Defaults to O(alias).
    type: str
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
notes:
  - A build takes about a minute for the base and the python image, longer for node and go.
    Check mode reports C(changed) (would build) without building.
"""

EXAMPLES = r"""
- name: Base image, built from the host's apt mirror when missing
  lxdctl.platform.lxd_image_build:
    runtime: base

- name: Python image from a given mirror, rebuilt
  lxdctl.platform.lxd_image_build:
    runtime: python
    mirror: http://deb.debian.org/debian
    force: true

- name: Take the node image from an image server instead
  lxdctl.platform.lxd_image_build:
    runtime: node
    server: https://images.example.com
"""

RETURN = r"""
alias:
  description: The image alias.
  returned: always
  type: str
  sample: lxdctl-python
fingerprint:
  description: The fingerprint the alias points at after the run (empty when absent or in check mode before a build).
  returned: always
  type: str
built:
  description: Whether an image was built or copied in this run (or would be, in check mode).
  returned: always
  type: bool
packages:
  description: The packages installed on top of minbase.
  returned: always
  type: list
  elements: str
mirror:
  description: The Debian mirror used (only when something was built).
  returned: when built
  type: str
build_seconds:
  description: How long the build and import took.
  returned: when built
  type: float
build_steps:
  description: Seconds per build step (debootstrap, unpack, apt, pack, import).
  returned: when built locally
  type: dict
rebuilt_because:
  description: Why an existing image was built again without O(force) - it was built by an older recipe.
  returned: when an outdated image was rebuilt
  type: str
"""

import fcntl
import glob
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tarfile
import tempfile
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import URLError
from ansible.module_utils.six.moves.urllib.request import urlopen

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils import _release

BASE_PACKAGES = (
    "systemd-sysv", "iproute2", "ifupdown", "isc-dhcp-client", "ca-certificates", "git", "curl", "python3",
    "procps",
)
RUNTIME_PACKAGES = {
    "base": (),
    "python": ("python3-venv", "python3-pip"),
    "node": ("nodejs", "npm"),
    "go": ("golang-go",),
}
# Bump when the rootfs recipe changes: old cached tarballs are not reused, and images built
# from an older recipe (property lxdctl.recipe) are rebuilt.
BASE_RECIPE_VERSION = "3"
RECIPE_PROPERTY = "lxdctl.recipe"
# The user apps run as (role project's project_app_user default), at home in the apps' root.
APP_USER = "app"
JOURNALD_DROP_IN = ("# Written by lxdctl's image build: an idle container's journal stays small.\n"
                    "[Journal]\nSystemMaxFileSize=2M\nSystemMaxUse=32M\n")
MIRROR_VAR = "platform_images_mirror"
INTERFACES = "auto lo\niface lo inet loopback\n\nauto eth0\niface eth0 inet dhcp\n"

_ALIAS_RE = re.compile(r"^[a-z0-9](?:[a-z0-9.-]{0,62}[a-z0-9])?$")
_SUITE_RE = re.compile(r"^[a-z][a-z0-9-]{1,30}$")
_MIRROR_RE = re.compile(r"^(?:https?://[A-Za-z0-9.-]+(?::[0-9]+)?|file://)(?:/[A-Za-z0-9._~%+-]*)*/?$")


def argspec_alias(value):
    if not isinstance(value, str) or not _ALIAS_RE.match(value):
        raise ValueError("alias: must be 1-64 lowercase letters, digits, dots or hyphens, got %r" % (value,))
    return value


def argspec_suite(value):
    if not isinstance(value, str) or not _SUITE_RE.match(value):
        raise ValueError("suite: must be a Debian release name such as bookworm, got %r" % (value,))
    return value


def check_mirror_syntax(value):
    """Return the mirror URL without a trailing slash, or raise ``LxdctlError`` naming the variable."""
    if not _MIRROR_RE.match(value or ""):
        raise LxdctlError(
            "%s (mirror): %r is not a Debian mirror URL; use http://, https:// or file:// such as "
            "http://deb.debian.org/debian" % (MIRROR_VAR, value)
        )
    return value.rstrip("/")


def argument_spec():
    spec = dict(
        runtime=dict(type="str", choices=sorted(RUNTIME_PACKAGES), default="base"),
        alias=dict(type=argspec_alias),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        force=dict(type="bool", default=False),
        refresh_rootfs=dict(type="bool"),
        mirror=dict(type="str", default=""),
        suite=dict(type=argspec_suite, default="bookworm"),
        cache_dir=dict(type="path", default="/var/cache/lxdctl/images"),
        server=dict(type="str", default=""),
        server_alias=dict(type=argspec_alias),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


# --- the host's apt sources ------------------------------------------------------------


def parse_one_line_sources(text):
    """``[(uri, suite, components)]`` of the ``deb`` lines of a sources.list file."""
    entries = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line.startswith("deb "):
            continue
        rest = line[4:].strip()
        if rest.startswith("["):
            if "]" not in rest:
                continue
            rest = rest.split("]", 1)[1].strip()
        fields = rest.split()
        if len(fields) >= 2:
            entries.append((fields[0], fields[1], tuple(fields[2:])))
    return entries


def parse_deb822_sources(text):
    """``[(uri, suite, components)]`` of the enabled ``Types: deb`` stanzas of a .sources file."""
    entries = []
    stanzas, current, key = [], {}, None
    for raw in text.splitlines() + [""]:
        if raw.startswith("#"):
            continue
        if not raw.strip():
            if current:
                stanzas.append(current)
            current, key = {}, None
            continue
        if raw[0] in " \t" and key:
            current[key] += " " + raw.strip()
            continue
        if ":" in raw:
            key, value = raw.split(":", 1)
            key = key.strip().lower()
            current[key] = value.strip()
    for stanza in stanzas:
        if "deb" not in stanza.get("types", "").split():
            continue
        if stanza.get("enabled", "yes").strip().lower() in ("no", "false", "0"):
            continue
        components = tuple(stanza.get("components", "").split())
        for uri in stanza.get("uris", "").split():
            for suite in stanza.get("suites", "").split():
                entries.append((uri, suite, components))
    return entries


def host_sources(root="/"):
    """Every ``deb`` source of the host, in apt's order (sources.list first)."""
    entries = []
    main = os.path.join(root, "etc/apt/sources.list")
    paths = [main] + sorted(glob.glob(os.path.join(root, "etc/apt/sources.list.d/*.list")))
    for path in paths:
        if os.path.isfile(path):
            with open(path) as handle:
                entries.extend(parse_one_line_sources(handle.read()))
    for path in sorted(glob.glob(os.path.join(root, "etc/apt/sources.list.d/*.sources"))):
        with open(path) as handle:
            entries.extend(parse_deb822_sources(handle.read()))
    return entries


def mirror_from_sources(entries, suite):
    """The mirror that serves ``suite`` with the ``main`` component, or ``None``."""
    for uri, entry_suite, components in entries:
        if entry_suite == suite and "main" in components and uri.split(":", 1)[0] in ("http", "https", "file"):
            return uri.rstrip("/")
    return None


def resolve_mirror(mirror, suite, root="/"):
    if mirror:
        return check_mirror_syntax(mirror)
    found = mirror_from_sources(host_sources(root), suite)
    if not found:
        raise LxdctlError(
            "%s: the host's apt sources (/etc/apt/sources.list, /etc/apt/sources.list.d/*.sources) name no "
            "mirror for %s main; set %s to a Debian mirror such as http://deb.debian.org/debian"
            % (MIRROR_VAR, suite, MIRROR_VAR)
        )
    return check_mirror_syntax(found)


def check_mirror_reachable(mirror, suite, timeout=15):
    """Fetch ``dists/<suite>/Release`` so an unreachable mirror fails before any build step."""
    url = "%s/dists/%s/Release" % (mirror, suite)
    try:
        if url.startswith("file://"):
            if not os.path.isfile(url[len("file://"):]):
                raise IOError("%s does not exist" % url)
        else:
            handle = urlopen(url, timeout=timeout)
            try:
                handle.read(64)
            finally:
                handle.close()
    except (URLError, IOError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise LxdctlError(
            "%s: cannot reach the Debian mirror %s (%s: %s). Set %s (module option mirror) to a "
            "reachable Debian mirror, or fix the host's apt sources." % (MIRROR_VAR, mirror, url, reason, MIRROR_VAR)
        )


# --- building --------------------------------------------------------------------------


def _remove_tree(path):
    """rmtree, unless a mount point (a chroot's /proc) is still inside it."""
    for dirpath, dirnames, _files in os.walk(path):
        for name in list(dirnames):
            if os.path.ismount(os.path.join(dirpath, name)):
                raise LxdctlError("%s is still mounted; unmount it and remove %s by hand" % (os.path.join(dirpath, name), path))
        if dirpath.count(os.sep) - path.count(os.sep) > 2:
            dirnames[:] = []  # mounts are only made at <work>/rootfs/proc
    shutil.rmtree(path, ignore_errors=True)


def _run(cmd, what, env=None):
    """Run an argument list (never a shell string); raise ``LxdctlError`` with its output tail."""
    full_env = dict(os.environ, LC_ALL="C", DEBIAN_FRONTEND="noninteractive")
    full_env.update(env or {})
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env)
    if proc.returncode != 0:
        tail = proc.stdout.decode("utf-8", "replace").strip().splitlines()[-15:]
        raise LxdctlError("%s failed (exit %d): %s" % (what, proc.returncode, "\n".join(tail)))


class ImageBuilder(object):
    def __init__(self, params, log=None):
        self.params = params
        self.suite = params["suite"]
        self.cache_dir = params["cache_dir"]
        self.log = log or (lambda msg: None)
        self.timings = {}

    def _timed(self, step, func, *args):
        started = time.monotonic()
        try:
            return func(*args)
        finally:
            self.timings[step] = round(self.timings.get(step, 0) + time.monotonic() - started, 1)

    def base_tarball_path(self, mirror):
        key = "\n".join([BASE_RECIPE_VERSION, self.suite, mirror] + list(BASE_PACKAGES))
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:12]
        return os.path.join(self.cache_dir, "base-%s-%s.tar" % (self.suite, digest))

    def ensure_base_tarball(self, mirror, refresh=False):
        """The cached base rootfs tarball, built with debootstrap when missing (or ``refresh``)."""
        os.makedirs(self.cache_dir, mode=0o700, exist_ok=True)
        path = self.base_tarball_path(mirror)
        with open(os.path.join(self.cache_dir, ".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent builds share one base
            if os.path.isfile(path) and not refresh:
                return path
            check_mirror_reachable(mirror, self.suite)
            if not shutil.which("debootstrap"):
                raise LxdctlError("debootstrap is not installed on the LXD host: apt-get install debootstrap")
            work = tempfile.mkdtemp(prefix="base-", dir=self.cache_dir)
            try:
                rootfs = os.path.join(work, "rootfs")
                self._timed("debootstrap", _run, ["debootstrap", "--variant=minbase", "--components=main",
                            "--include=" + ",".join(BASE_PACKAGES), self.suite, rootfs, mirror],
                            "debootstrap of %s from %s" % (self.suite, mirror))
                etc = os.path.join(rootfs, "etc")
                os.makedirs(os.path.join(etc, "network"), exist_ok=True)
                with open(os.path.join(etc, "network", "interfaces"), "w") as handle:
                    handle.write(INTERFACES)
                with open(os.path.join(etc, "hostname"), "w") as handle:
                    handle.write("lxdctl\n")
                with open(os.path.join(etc, "apt", "sources.list"), "w") as handle:
                    handle.write("deb %s %s main\n" % (mirror, self.suite))
                # made here once, not by every create: useradd in a new container costs a create 0.3 s
                self._timed("app user", _run, ["chroot", rootfs, "useradd", "--system", "--user-group",
                                               "--create-home", "--home-dir", _release.APP_ROOT, "--shell", "/bin/sh", APP_USER],
                            "adding the app user %s to the base rootfs" % APP_USER)
                self.cleanup_rootfs(rootfs)
                tmp = path + ".tmp"
                _run(["tar", "--numeric-owner", "-C", rootfs, "-cf", tmp, "."], "packing the base rootfs")
                os.rename(tmp, path)
                for stale in glob.glob(os.path.join(self.cache_dir, "base-%s-*.tar" % self.suite)):
                    if stale != path:
                        os.unlink(stale)  # made by an older recipe or another mirror
            finally:
                _remove_tree(work)
        return path

    @staticmethod
    def cleanup_rootfs(rootfs):
        """Drop what must not be shared by every container: apt caches, machine id, resolv.conf."""
        for pattern in ("var/cache/apt/archives/*.deb", "var/cache/apt/*.bin", "var/lib/apt/lists/*_*",
                        "var/log/*.log", "var/log/apt/*"):
            for path in glob.glob(os.path.join(rootfs, pattern)):
                if os.path.isfile(path):
                    os.unlink(path)
        machine_id = os.path.join(rootfs, "etc", "machine-id")
        with open(machine_id, "w"):
            pass  # empty: systemd makes a fresh one at first boot
        dbus_id = os.path.join(rootfs, "var", "lib", "dbus", "machine-id")
        if os.path.lexists(dbus_id):
            os.unlink(dbus_id)
        resolv = os.path.join(rootfs, "etc", "resolv.conf")
        if os.path.lexists(resolv):
            os.unlink(resolv)
        units = os.path.join(rootfs, "etc", "systemd", "system")
        # binfmt_misc cannot be set up by an unprivileged container; the unit only fails there.
        # Nobody logs in on a container's console (lxc exec is the way in): its getty is memory for nothing.
        for unit in ("systemd-binfmt.service", "console-getty.service"):
            mask = os.path.join(units, unit)
            if os.path.isdir(units) and not os.path.lexists(mask):
                os.symlink("/dev/null", mask)
        journald = os.path.join(rootfs, "etc", "systemd", "journald.conf.d")
        if os.path.isdir(os.path.dirname(journald)):
            os.makedirs(journald, exist_ok=True)
            with open(os.path.join(journald, "lxdctl.conf"), "w") as handle:
                handle.write(JOURNALD_DROP_IN)

    def install_packages(self, rootfs, packages):
        """apt-get install in a chroot of ``rootfs``, with /proc mounted and services kept from starting."""
        policy = os.path.join(rootfs, "usr", "sbin", "policy-rc.d")
        with open(policy, "w") as handle:
            handle.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
        shutil.copyfile("/etc/resolv.conf", os.path.join(rootfs, "etc", "resolv.conf"))
        proc_dir = os.path.join(rootfs, "proc")
        _run(["mount", "-t", "proc", "proc", proc_dir], "mounting /proc in the build chroot")
        try:
            apt = ["chroot", rootfs, "apt-get", "-q", "-y", "-o", "Dpkg::Use-Pty=0"]
            _run(apt + ["update"], "apt-get update in the build chroot")
            _run(apt + ["install", "--no-install-recommends"] + list(packages),
                 "apt-get install %s in the build chroot" % " ".join(packages))
            _run(apt + ["clean"], "apt-get clean in the build chroot")
        finally:
            subprocess.run(["umount", "-l", proc_dir])
        os.unlink(policy)

    def metadata(self, runtime, packages, build_date):
        return {
            "architecture": platform.machine(),
            "creation_date": int(time.time()),
            "properties": {
                "os": "debian",
                "release": self.suite,
                "description": "lxdctl %s image (Debian %s)" % (runtime, self.suite),
                "lxdctl.runtime": runtime,
                "lxdctl.build_date": build_date,
                "lxdctl.packages": ",".join(packages),
                RECIPE_PROPERTY: BASE_RECIPE_VERSION,
            },
            "templates": {
                "/etc/hostname": {"when": ["create", "copy"], "template": "hostname.tpl"},
                "/etc/hosts": {"when": ["create", "copy"], "template": "hosts.tpl"},
            },
        }

    def write_metadata_tarball(self, path, metadata):
        import json  # JSON is valid YAML; no YAML library needed on the host

        work = os.path.dirname(path)
        meta_file = os.path.join(work, "metadata.yaml")
        with open(meta_file, "w") as handle:
            json.dump(metadata, handle, indent=2, sort_keys=True)
        tpl_dir = os.path.join(work, "templates")
        os.makedirs(tpl_dir, exist_ok=True)
        with open(os.path.join(tpl_dir, "hostname.tpl"), "w") as handle:
            handle.write("{{ container.name }}\n")
        with open(os.path.join(tpl_dir, "hosts.tpl"), "w") as handle:
            handle.write("127.0.0.1 localhost\n127.0.1.1 {{ container.name }}\n"
                         "::1 localhost ip6-localhost ip6-loopback\n")
        with tarfile.open(path, "w") as tar:
            tar.add(meta_file, arcname="metadata.yaml")
            tar.add(tpl_dir, arcname="templates")

    def build(self, client, runtime, alias, mirror, force_base=False):
        packages = RUNTIME_PACKAGES[runtime]
        if packages:
            check_mirror_reachable(mirror, self.suite)
        base = self.ensure_base_tarball(mirror, refresh=force_base)
        work = tempfile.mkdtemp(prefix="%s-" % runtime, dir=self.cache_dir)
        try:
            if packages:
                rootfs = os.path.join(work, "rootfs")
                os.makedirs(rootfs)
                self._timed("unpack", _run, ["tar", "--numeric-owner", "-C", rootfs, "-xf", base],
                            "unpacking the base rootfs")
                self._timed("apt", self.install_packages, rootfs, packages)
                self.cleanup_rootfs(rootfs)
                rootfs_path = os.path.join(work, "rootfs.tar")
                self._timed("pack", _run, ["tar", "--numeric-owner", "-C", rootfs, "-cf", rootfs_path, "."],
                            "packing the rootfs")
                _remove_tree(rootfs)
            else:
                rootfs_path = base  # the cached base rootfs is already cleaned up: import it as it is
            build_date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            meta_path = os.path.join(work, "meta.tar")
            self.write_metadata_tarball(meta_path, self.metadata(runtime, BASE_PACKAGES + packages, build_date))
            description = "lxdctl %s image (Debian %s, built %s)" % (runtime, self.suite, build_date)
            return self._timed("import", _lxd.import_image, client, meta_path, rootfs_path, alias, description)
        finally:
            _remove_tree(work)


def recipe_of(image):
    """The recipe version an image was built by (images of recipes 1 and 2 carry none)."""
    return ((image or {}).get("properties") or {}).get(RECIPE_PROPERTY, "")


class ImageService(object):
    def __init__(self, module, client):
        self.module = module
        self.params = module.params
        self.client = client

    def run(self):
        runtime = self.params["runtime"]
        alias = self.params["alias"] or "lxdctl-%s" % runtime
        packages = list(BASE_PACKAGES + RUNTIME_PACKAGES[runtime])
        current = _lxd.image_by_alias(self.client, alias)
        before = {"alias": alias, "fingerprint": current["fingerprint"]} if current else {}
        result = dict(changed=False, built=False, alias=alias, packages=packages,
                      fingerprint=current["fingerprint"] if current else "")

        if self.params["state"] == "absent":
            if current:
                result["changed"] = True
                result["fingerprint"] = ""
                if not self.module.check_mode:
                    _lxd.delete_image(self.client, current["fingerprint"])
            result["diff"] = dict(before=before, after={})
            return result

        outdated = bool(current) and not self.params["server"] and recipe_of(current) != BASE_RECIPE_VERSION
        if current and not self.params["force"] and not outdated:
            result["diff"] = dict(before=before, after=before)
            return result

        result.update(changed=True, built=True)
        if outdated:
            result["rebuilt_because"] = "built by recipe %s, the recipe is now %s" % (recipe_of(current) or "1-2",
                                                                                     BASE_RECIPE_VERSION)
        if self.module.check_mode:
            result["diff"] = dict(before=before, after={"alias": alias, "fingerprint": "(built when not in check mode)"})
            return result

        started = time.monotonic()
        if self.params["server"]:
            fingerprint = _lxd.copy_image_from_server(
                self.client, self.params["server"], self.params["server_alias"] or alias, alias,
                "lxdctl %s image from %s" % (runtime, self.params["server"]))
        else:
            mirror = resolve_mirror(self.params["mirror"], self.params["suite"])
            result["mirror"] = mirror
            builder = ImageBuilder(self.params)
            refresh = self.params["refresh_rootfs"]
            if refresh is None:
                refresh = self.params["force"] and runtime == "base"
            fingerprint = builder.build(self.client, runtime, alias, mirror, force_base=refresh)
            result["build_steps"] = builder.timings
        result["build_seconds"] = round(time.monotonic() - started, 1)
        result["fingerprint"] = fingerprint
        result["diff"] = dict(before=before, after={"alias": alias, "fingerprint": fingerprint})
        return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        client = _lxd.connect(module.params)
        result = ImageService(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_storage_pool
short_description: Manage an LXD storage pool (btrfs on a loop file, or dir)
description:
  - Creates, changes or removes an LXD storage pool.
  - With O(driver=auto) a new pool is btrfs on a loop file when the kernel has btrfs (listed in
    C(/proc/filesystems), loading the module if needed) and C(mkfs.btrfs) is installed, else
    dir. An existing pool is adopted with whatever driver it has.
  - Only the config keys you give are compared and changed; keys LXD set itself (C(source),
    C(volatile.*) ...) are left alone. C(changed) is only reported on a real difference.
  - The driver of an existing pool cannot change; asking for another one fails.
  - O(metadata_profile) sets the btrfs profile of the pool's metadata (and system) chunks,
    converting them with C(btrfs balance) when they differ. It needs the pool mounted on this
    host, under the directory of the local LXD socket.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description: The pool name.
    type: str
    required: true
  driver:
    description: The storage driver. V(auto) picks btrfs when this host can, else dir.
    type: str
    choices: [auto, btrfs, dir]
    default: auto
  size:
    description:
      - Size of the btrfs loop file, such as C(30GiB). Used when a btrfs pool is created;
        ignored for dir pools. LXD 5.0 cannot resize a pool, so an existing pool keeps its size.
    type: str
  config:
    description: Further pool config keys (values are compared as LXD's strings).
    type: dict
    default: {}
  description:
    description: The pool description; left alone when omitted.
    type: str
  metadata_profile:
    description:
      - The btrfs profile of the pool's metadata and system chunks, read with
        C(btrfs filesystem df) and converted with
        C(btrfs balance start -f -mconvert=<profile> -sconvert=<profile>) when it differs.
        Omitted means the profile is left alone.
      - V(single) keeps one copy. The pool is a loop file on the host's disk, so a second copy
        in the same file protects little, and metadata is most of what an idle project costs
        the pool. LXD shifts the owner of every file of a container's rootfs on its first start,
        which unshares about 10 MiB of metadata per container; single halves what that takes.
      - V(dup) keeps two copies, the btrfs default on one device; choose it to go back.
      - Applies to btrfs pools only; for another driver it is ignored and the result says so in
        RV(metadata_profile_skipped).
      - The pool must be mounted at C(storage-pools/<name>) beside the LXD socket
        (C(/var/lib/lxd/storage-pools/<name>) by default). With an C(https://) O(lxd_url) the pool
        is on another host; it is then ignored and RV(metadata_profile_skipped) says so.
    type: str
    choices: [single, dup]
  state:
    description: Whether the pool exists. An absent pool must not be in use.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
notes:
  - V(auto) inspects the host the module runs on, which should be the LXD host.
"""

EXAMPLES = r"""
- name: The platform pool, btrfs where possible
  lxdctl.platform.lxd_storage_pool:
    name: lxdctl
    driver: auto
    size: 30GiB

- name: The platform pool with one copy of its btrfs metadata
  lxdctl.platform.lxd_storage_pool:
    name: lxdctl
    size: 30GiB
    metadata_profile: single

- name: A small dir pool
  lxdctl.platform.lxd_storage_pool:
    name: scratch
    driver: dir

- name: Remove it
  lxdctl.platform.lxd_storage_pool:
    name: scratch
    state: absent
"""

RETURN = r"""
pool:
  description: The pool after the run (empty when absent).
  returned: always
  type: dict
  sample: {"name": "lxdctl", "driver": "btrfs", "description": "", "config": {"size": "30GiB", "source": "/var/lib/lxd/disks/lxdctl.img"}}
driver_reason:
  description: Why O(driver=auto) chose the driver of a new pool.
  returned: when a pool is created with driver auto
  type: str
metadata_profile:
  description:
    - The btrfs metadata profile of the pool after the run (in check mode, the one it would have).
  returned: when O(metadata_profile) is set and the pool is btrfs
  type: str
  sample: single
metadata_profile_skipped:
  description: Why O(metadata_profile) was ignored.
  returned: when O(metadata_profile) is set and the pool is not btrfs, or LXD is reached by https
  type: str
  sample: dir pools have no btrfs metadata
"""

import os
import re
import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._lxd_host_object import HostObjectService
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd, _names, _platform_config

KIND = "storage pool"


def argument_spec():
    spec = dict(
        name=dict(type=_lxd.argspec_object_name, required=True),
        driver=dict(type="str", choices=["auto", "btrfs", "dir"], default="auto"),
        size=dict(type=_names.argspec_size),
        config=dict(type="dict", default={}),
        description=dict(type="str"),
        metadata_profile=dict(type="str", choices=["single", "dup"]),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def btrfs_support(filesystems_path="/proc/filesystems", load=True):
    """``(True, reason)`` when this kernel has btrfs and mkfs.btrfs exists, else ``(False, reason)``."""

    def listed():
        try:
            with open(filesystems_path) as handle:
                return any(line.split()[-1:] == ["btrfs"] for line in handle)
        except (IOError, OSError):
            return False

    if not shutil.which("mkfs.btrfs"):
        return False, "mkfs.btrfs is not installed (btrfs-progs), so dir"
    if not listed() and load and shutil.which("modprobe"):
        # A failed load shows as btrfs still missing from /proc/filesystems below.
        subprocess.run(["modprobe", "btrfs"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    if listed():
        return True, "the kernel supports btrfs, so btrfs on a loop file"
    return False, "the kernel has no btrfs support, so dir"


def btrfs_metadata_profile(df_output):
    """The metadata profile in ``btrfs filesystem df`` output, lowercased (``"dup"`` from
    ``Metadata, DUP: total=..., used=...``); ``None`` when there is no Metadata line.

    A conversion cut short leaves chunks of two profiles: that reads as both, joined with
    ``+`` (``"dup+single"``), which matches no wanted profile. Empty chunks (total 0) of
    another profile are not counted.
    """
    seen = []  # (profile, empty)
    for line in df_output.splitlines():
        head, colon, rest = line.partition(":")
        kind, comma, profile = head.partition(",")
        if colon and comma and kind.strip() == "Metadata":
            total = re.search(r"total=([0-9.]+)", rest)
            seen.append((profile.strip().lower(), bool(total) and float(total.group(1)) == 0))
    profiles = sorted(set(name for name, empty in seen if not empty)) or sorted(set(name for name, _ in seen))
    return "+".join(profiles) or None


def pool_mountpoint(params, name):
    """Where LXD mounts pool ``name``: ``storage-pools/<name>`` in the directory of its socket;
    None for an LXD reached by https."""
    resolved = _platform_config.resolve(params, "lxd", {"lxd_url": "url"})
    url = resolved.get("lxd_url") or ("unix://" + _lxd.DEFAULT_SOCKET)
    if not url.startswith("unix://"):
        return None  # an LXD reached over the network keeps its pools on its own host
    return os.path.join(os.path.dirname(url[len("unix://"):]), "storage-pools", name)


def view(obj):
    if not obj:
        return {}
    return {
        "name": obj.get("name"),
        "driver": obj.get("driver"),
        "description": obj.get("description") or "",
        "config": dict(obj.get("config") or {}),
    }


class StoragePoolService(HostObjectService):
    kind = KIND
    result_key = "pool"
    view = staticmethod(view)

    def __init__(self, module, client, detect=btrfs_support, ismount=os.path.ismount):
        super(StoragePoolService, self).__init__(module, client)
        self.detect = detect
        self.ismount = ismount

    def present(self, name, current):
        result = self.update(name, current) if current else self.create_pool(name)
        if self.params["metadata_profile"]:
            self.metadata_profile(name, result, existed=bool(current))
        return result

    def btrfs(self, *args):
        argv = ["btrfs"] + list(args)
        rc, out, err = self.module.run_command(argv)
        if rc != 0:
            raise LxdctlError("%s failed (rc=%s): %s" % (" ".join(argv), rc, (err or out).strip()))
        return out

    def read_metadata_profile(self, mountpoint):
        out = self.btrfs("filesystem", "df", mountpoint)
        profile = btrfs_metadata_profile(out)
        if profile is None:
            raise LxdctlError("btrfs filesystem df %s shows no Metadata line: %s" % (mountpoint, out.strip()))
        return profile

    def metadata_profile(self, name, result, existed):
        """Bring the btrfs metadata (and system) chunks of the pool to O(metadata_profile);
        adds to ``result`` in place."""
        wanted = self.params["metadata_profile"]
        driver = result[self.result_key].get("driver")
        if driver != "btrfs":
            result["metadata_profile_skipped"] = "%s pools have no btrfs metadata" % driver
            return
        mountpoint = pool_mountpoint(self.params, name)
        if mountpoint is None:
            result["metadata_profile_skipped"] = "the pool is on the host of the remote LXD, not on this one"
            return
        if not existed and self.module.check_mode:
            # The pool would only now be created: nothing to read, it gets the profile asked for.
            result["metadata_profile"] = wanted
            result["diff"]["after"] = dict(result["diff"]["after"], metadata_profile=wanted)
            return
        if not self.ismount(mountpoint):
            raise LxdctlError(
                "Storage pool %s is not mounted at %s, so its btrfs metadata profile cannot be read or "
                "changed (metadata_profile). Is LXD running, and is this the host LXD runs on?" % (name, mountpoint)
            )
        before = self.read_metadata_profile(mountpoint)
        after = before
        if before != wanted:
            result["changed"] = True
            after = wanted
            if not self.module.check_mode:
                self.btrfs("balance", "start", "-f", "-mconvert=" + wanted, "-sconvert=" + wanted, mountpoint)
                after = self.read_metadata_profile(mountpoint)
                if after != wanted:
                    raise LxdctlError("btrfs balance left the metadata of storage pool %s as %s, not %s (%s)"
                                      % (name, after, wanted, mountpoint))
        result["metadata_profile"] = after
        result["diff"] = dict(before=dict(result["diff"]["before"], metadata_profile=before),
                              after=dict(result["diff"]["after"], metadata_profile=after))

    def wanted_config(self, driver):
        config = {key: _lxd.lxd_value(value) for key, value in (self.params["config"] or {}).items()}
        if driver == "btrfs" and self.params["size"]:
            config.setdefault("size", self.params["size"])
        return config

    def create_pool(self, name):
        driver = self.params["driver"]
        reason = None
        if driver == "auto":
            usable, reason = self.detect()
            driver = "btrfs" if usable else "dir"
        body = {"name": name, "driver": driver, "description": self.params["description"] or "",
                "config": self.wanted_config(driver)}
        result = self.create(name, body, body)
        result["diff"]["after"] = result["pool"]  # LXD fills in source and size: show them
        if reason is not None:
            result["driver_reason"] = reason
        return result

    def update(self, name, current):
        driver = self.params["driver"]
        if driver != "auto" and driver != current["driver"]:
            raise LxdctlError(
                "Storage pool %s exists with driver %s; its driver cannot change to %s. Use driver auto to "
                "adopt it, or remove the pool first." % (name, current["driver"], driver)
            )
        wanted = self.wanted_config(current["driver"])
        wanted.pop("size", None)  # set at creation only: LXD 5.0 cannot resize a pool
        return self.patch(name, current, wanted)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _lxd.connect, StoragePoolService)


if __name__ == "__main__":
    main()

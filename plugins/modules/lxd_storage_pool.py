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
"""

import shutil
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._lxd_host_object import HostObjectService
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd, _names

KIND = "storage pool"


def argument_spec():
    spec = dict(
        name=dict(type=_lxd.argspec_object_name, required=True),
        driver=dict(type="str", choices=["auto", "btrfs", "dir"], default="auto"),
        size=dict(type=_names.argspec_size),
        config=dict(type="dict", default={}),
        description=dict(type="str"),
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

    def __init__(self, module, client, detect=btrfs_support):
        super(StoragePoolService, self).__init__(module, client)
        self.detect = detect

    def present(self, name, current):
        if current:
            return self.update(name, current)
        return self.create_pool(name)

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

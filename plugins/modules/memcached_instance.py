#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: memcached_instance
short_description: A memcached process for one project alone
description:
  - Runs one memcached process per project, as the C(memcache) user, listening on the
    platform's memcached address (the bridge address) on a port of its own.
  - Without O(port), a port is allocated from C(memcached.port_range) of the platform
    configuration and recorded in C(<run_dir>/registry.json), so reruns keep it.
  - On systemd hosts the process is a unit C(lxdctl-memcached-<name>.service); elsewhere a
    process with a pidfile in the run directory.
  - A change of O(port), O(memory_mb) or O(listen) restarts the instance (its cache is lost).
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description: The project name.
    type: str
    required: true
  port:
    description: The TCP port. Defaults to the recorded port, or a newly allocated one.
    type: int
  memory_mb:
    description: The cache size in MiB (memcached C(-m)).
    type: int
    default: 64
  listen:
    description: The address to listen on. Defaults to C(memcached.listen) of the platform configuration.
    type: str
  state:
    description: Whether the instance runs.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Cache of project myapp
  lxdctl.platform.memcached_instance:
    name: myapp
    memory_mb: 64
  register: cache

- name: Remove it
  lxdctl.platform.memcached_instance:
    name: myapp
    state: absent
"""

RETURN = r"""
port:
  description: The instance's port (null when absent).
  returned: always
  type: int
  sample: 21001
listen:
  description: The address it listens on.
  returned: always
  type: str
  sample: 10.77.0.1
servers:
  description: The value for C(MEMCACHED_SERVERS) (empty when absent).
  returned: always
  type: str
  sample: 10.77.0.1:21001
memory_mb:
  description: The cache size.
  returned: always
  type: int
"""

import ipaddress

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _memcached, _names


def argument_spec():
    return dict(
        name=dict(type=_names.argspec_project_name, required=True),
        port=dict(type=_names.argspec_port),
        memory_mb=dict(type="int", default=64),
        listen=dict(type="str"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def validate(params):
    if not 1 <= params["memory_mb"] <= 65536:
        raise LxdctlError("memory_mb: must be from 1 to 65536")
    if params.get("listen"):
        try:
            ipaddress.IPv4Address(params["listen"])
        except ValueError:
            raise LxdctlError("listen: must be an IPv4 address, got %r" % params["listen"])


class InstanceService(Service):
    """No client: memcached is driven through processes and the registry file."""

    def run(self):
        params = self.params
        name = params["name"]
        conf = _memcached.settings(params)
        run_dir = conf["run_dir"]
        check = self.module.check_mode
        with _memcached.Registry(run_dir, create=not check and params["state"] == "present") as registry:
            entry = registry.data.get(name)
            running = False
            if entry:
                running = _memcached.status(name, run_dir, entry["listen"], entry["port"]) == "running"
            before = dict(entry, running=running) if entry else {}
            if params["state"] == "absent":
                return self._absent(name, run_dir, registry, entry, running, before, check)
            port = params["port"] or (entry or {}).get("port")
            if port is None:
                port = _memcached.allocate_port(registry.data, conf["port_range"], conf["listen"], name)
            else:
                owner = [key for key, other in registry.data.items() if key != name and other.get("port") == port]
                if owner:
                    raise LxdctlError("port: %d is already the memcached port of project %s" % (port, owner[0]))
            wanted = {"port": int(port), "memory_mb": params["memory_mb"], "listen": conf["listen"]}
            after = dict(wanted, running=True)
            settings_changed = entry is not None and {k: entry.get(k) for k in wanted} != wanted
            changed = entry is None or settings_changed or not running
            if changed and not check:
                if settings_changed and running:
                    _memcached.stop(name, run_dir)
                if not _memcached.process_running(name, run_dir) and not _memcached.port_free(
                        wanted["listen"], wanted["port"]):
                    raise LxdctlError("port: %s:%d is in use by another process" % (wanted["listen"], wanted["port"]))
                registry.data[name] = wanted
                registry.save()
                _memcached.start(name, run_dir, wanted["listen"], wanted["port"], wanted["memory_mb"])
            return dict(
                changed=changed,
                port=wanted["port"],
                listen=wanted["listen"],
                memory_mb=wanted["memory_mb"],
                servers="%s:%d" % (wanted["listen"], wanted["port"]),
                diff=dict(before=before, after=after),
            )

    def _absent(self, name, run_dir, registry, entry, running, before, check):
        changed = entry is not None or running or _memcached.process_running(name, run_dir)
        if changed and not check:
            _memcached.stop(name, run_dir)
            if entry is not None:
                del registry.data[name]
                registry.save()
        return dict(changed=changed, port=None, listen=(entry or {}).get("listen"), memory_mb=None,
                    servers="", diff=dict(before=before, after={}))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, None, InstanceService, validate=validate)


if __name__ == "__main__":
    main()

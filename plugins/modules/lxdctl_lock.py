#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxdctl_lock
short_description: Take or release a named lock in the lxdctl state store
description:
  - Serialises changes to one project across processes, hosts and AWX jobs. Project playbooks take
    V(project:<name>) before they change anything and release it at the end.
  - A lock held by a live owner makes this module fail with
    C(project myapp is locked by pid N on HOST since ...; retry later).
  - A lock is taken over when its expiry (O(ttl) after it was taken) has passed, or when its owner
    pid no longer runs on this host (a killed C(lxdctl) process).
  - Modules run in short-lived processes, so the owner is not the module's own pid. The C(lxdctl)
    CLI passes its pid as the extra var C(lxdctl_owner_pid); playbooks pass
    O(owner_pid) as C({{ lxdctl_owner_pid | default(omit) }}). Without an owner pid the lock is
    time-based only (it is held until released or until O(ttl) runs out).
  - Taking a lock that the same owner (pid and host) already holds extends its expiry and is not
    reported as a change.
version_added: "0.1.0"
options:
  name:
    description: The lock's name, by convention V(project:<project name>).
    type: str
    required: true
  state:
    description: V(acquired) takes the lock, V(released) gives it back.
    type: str
    choices: [acquired, released]
    default: acquired
  ttl:
    description: Seconds after which the lock may be taken over even if its owner still runs.
    type: int
    default: 1800
  owner_pid:
    description: The pid that owns the lock (see the description). Omit for a time-based lock.
    type: int
  owner_host:
    description: The host of O(owner_pid). Defaults to this host's name.
    type: str
  force:
    description: With O(state=released), remove the lock whoever holds it.
    type: bool
    default: false
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
author:
  - lxdctl authors
"""

EXAMPLES = r"""
- name: Take the project lock
  lxdctl.platform.lxdctl_lock:
    name: "project:{{ project_name }}"
    owner_pid: "{{ lxdctl_owner_pid | default(omit) }}"
    ttl: 1800

- name: Release it
  lxdctl.platform.lxdctl_lock:
    name: "project:{{ project_name }}"
    owner_pid: "{{ lxdctl_owner_pid | default(omit) }}"
    state: released
"""

RETURN = r"""
lock:
  description: The lock row (name, owner_pid, owner_host, acquired_at, expires_at); empty when released.
  returned: always
  type: dict
acquired:
  description: Whether the lock was (or would be) taken now, as opposed to already being held by this owner.
  returned: when O(state=acquired)
  type: bool
"""

import socket

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _state


def argument_spec():
    spec = dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["acquired", "released"], default="acquired"),
        ttl=dict(type="int", default=_state.DEFAULT_LOCK_TTL),
        owner_pid=dict(type="int"),
        owner_host=dict(type="str"),
        force=dict(type="bool", default=False),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


class LockService:
    def __init__(self, module, store):
        self.module = module
        self.store = store
        p = module.params
        self.name = p["name"]
        self.pid = p["owner_pid"] or None
        self.host = p["owner_host"] or socket.gethostname()

    def run(self):
        if self.module.params["state"] == "acquired":
            return self.acquire()
        return self.release()

    def acquire(self):
        ttl = self.module.params["ttl"]
        if ttl <= 0:
            raise LxdctlError("ttl: must be a positive number of seconds, got %d" % ttl)
        if self.module.check_mode:
            row = self.store.get_lock(self.name)
            same = row is not None and self.pid is not None and (row["owner_pid"], row["owner_host"]) == (self.pid, self.host)
            if row is not None and not same and not self.store._lock_stale(row, _state._utcnow(), self.host):
                raise _state.lock_held_error(row)
            return dict(changed=not same, acquired=not same, lock=row or {})
        row, acquired = self.store.acquire_lock(self.name, ttl=ttl, pid=self.pid, host=self.host)
        return dict(changed=acquired, acquired=acquired, lock=row)

    def release(self):
        row = self.store.get_lock(self.name)
        if row is None:
            return dict(changed=False, lock={})
        if self.module.check_mode:
            mine = (row["owner_pid"], row["owner_host"]) == (self.pid, self.host)
            if not (mine or self.module.params["force"] or self.store._lock_stale(row, _state._utcnow(), self.host)):
                raise LxdctlError("%s is held by pid %s on %s, not by pid %s on %s; not released"
                                  % (_state._describe_lock(self.name), row["owner_pid"], row["owner_host"],
                                     self.pid, self.host))
            return dict(changed=True, lock={})
        released = self.store.release_lock(self.name, pid=self.pid, host=self.host, force=self.module.params["force"])
        return dict(changed=released, lock={})


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    # the store is closed however the run ends
    run_service(module, _state.open_from_params, LockService)


if __name__ == "__main__":
    main()

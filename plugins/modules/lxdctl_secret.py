#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxdctl_secret
short_description: Get or create a generated secret in the lxdctl state store
description:
  - Returns the secret stored for (O(project), O(name)), generating a random url-safe one
    (letters and digits) of O(length) characters the first time. Reruns return the same value,
    so passwords derived from it stay stable.
  - The value is stored encrypted (AES-256-GCM, key in the state key file).
  - The value is returned in RV(value); register the result on a task with C(no_log) set to true.
  - C(changed) is true only when a secret is created, rotated or removed.
  - O(names) gets (or creates) several secrets of one project in one call, e.g. every password a
    project needs; their values come back in RV(values).
version_added: "0.1.0"
options:
  project:
    description:
      - The project that owns the secret; deleting the project deletes it.
      - Omit it for a platform-wide secret.
    type: str
  name:
    description:
      - The secret's name within the project, e.g. V(db_password).
      - One of O(name) and O(names) is required.
    type: str
  names:
    description:
      - Several secrets of the project, each handled as O(name) would be (same O(length),
        O(rotate) and O(state)). Mutually exclusive with O(name).
    type: list
    elements: str
  length:
    description: The length of a generated secret (8 to 4096).
    type: int
    default: 32
  rotate:
    description: Replace the stored secret with a new one.
    type: bool
    default: false
  state:
    description: V(present) gets or creates the secret; V(absent) removes it.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
notes:
  - In check mode a secret that does not exist yet is not generated, and RV(value) is null
    (with O(names), its entry in RV(values) is null). That includes every secret of a project
    that is not in the state yet.
author:
  - lxdctl authors
"""

EXAMPLES = r"""
- name: The database password of the project (stable across reruns)
  lxdctl.platform.lxdctl_secret:
    project: myapp
    name: db_password
  register: _project_db_secret
  no_log: true

- name: Every password of the project at once
  lxdctl.platform.lxdctl_secret:
    project: myapp
    names: [postgres-password, redis-password]
  register: _project_secrets
  no_log: true

- name: Rotate it
  lxdctl.platform.lxdctl_secret:
    project: myapp
    name: db_password
    rotate: true
  register: _project_db_secret
  no_log: true
"""

RETURN = r"""
value:
  description: The secret. Null in check mode when it would be created or rotated, and with O(state=absent).
  returned: with O(name)
  type: str
values:
  description: Name to secret, for every name of O(names) (null where RV(value) would be).
  returned: with O(names)
  type: dict
created:
  description: Whether the secret (with O(names), any of them) was (or would be) created now.
  returned: always
  type: bool
rotated:
  description: Whether the secret (with O(names), any of them) was (or would be) replaced.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _state


def argument_spec():
    spec = dict(
        project=dict(type=argspec_project_name),
        name=dict(type="str"),
        names=dict(type="list", elements="str", no_log=False),
        length=dict(type="int", default=32, no_log=False),
        rotate=dict(type="bool", default=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


class SecretService:
    def __init__(self, module, store, name=None):
        self.module = module
        self.store = store
        self.project = module.params["project"]
        self.name = name or module.params["name"]

    def run(self):
        p = self.module.params
        if not 8 <= p["length"] <= 4096:
            raise LxdctlError("length: must be from 8 to 4096, got %d" % p["length"])
        if self.module.check_mode and self.project is not None and self.store.get_project(self.project) is None:
            # A dry run of a new project: the project row (and so every secret of it) is only planned.
            _state._check_secret_name(self.name)
            create = p["state"] == "present"
            return dict(changed=create, value=None, created=create, rotated=False)
        existing = self.store.get_secret(self.project, self.name)
        if p["state"] == "absent":
            if existing is not None and not self.module.check_mode:
                self.store.delete_secret(self.project, self.name)
                self.store.audit(_state.default_actor(), "secret.delete", self.project, dict(name=self.name))
            return dict(changed=existing is not None, value=None, created=False, rotated=False)
        created = existing is None
        rotated = not created and p["rotate"]
        if not (created or rotated):
            return dict(changed=False, value=existing, created=False, rotated=False)
        if self.module.check_mode:
            return dict(changed=True, value=None, created=created, rotated=rotated)
        value, changed = self.store.get_or_create_secret(self.project, self.name, length=p["length"], rotate=rotated)
        if not changed:  # another process created it between our read and our write
            return dict(changed=False, value=value, created=False, rotated=False)
        self.store.audit(_state.default_actor(), "secret.rotate" if rotated else "secret.create", self.project,
                         dict(name=self.name, length=len(value)))
        return dict(changed=True, value=value, created=created, rotated=rotated)


def run_many(module, store, names):
    """O(names): each secret as O(name) would be; one result with every value."""
    results = dict((name, SecretService(module, store, name).run()) for name in names)
    return dict(changed=any(r["changed"] for r in results.values()),
                values=dict((name, r["value"]) for name, r in results.items()),
                created=any(r["created"] for r in results.values()),
                rotated=any(r["rotated"] for r in results.values()))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_one_of=[("name", "names")], mutually_exclusive=[("name", "names")])
    try:
        with _state.open_from_params(module.params) as store:
            if module.params["names"] is not None:
                result = run_many(module, store, module.params["names"])
            else:
                result = SecretService(module, store).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxdctl_info
short_description: Read projects from the lxdctl state store
description:
  - Returns one project (O(project)) with what it owns in the state, or every project.
  - Env values are returned only with O(reveal=true); register such a result on a task with C(no_log) set to true.
    Without it, RV(env_keys) lists the variable names and whether each is secret.
  - With O(platform=true) it also returns the platform settings a project needs (RV(platform)),
    read from the platform configuration on the managed host, so a playbook needs no separate
    read of that file (which holds admin credentials).
  - Never changes anything.
version_added: "0.1.0"
options:
  project:
    description: The project to read. Omit it to list every project (RV(projects)).
    type: str
  reveal:
    description: Also return the decrypted env values in RV(env).
    type: bool
    default: false
  platform:
    description:
      - Also return RV(platform), the non-secret platform settings that a project uses.
      - Fails when the platform configuration cannot be read (the platform is not initialised).
    type: bool
    default: false
  config_path:
    description:
      - The platform configuration read with O(platform=true).
      - Defaults to E(LXDCTL_CONFIG), then C(/etc/lxdctl/platform.json).
    type: path
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
author:
  - lxdctl authors
"""

EXAMPLES = r"""
- name: Read the project
  lxdctl.platform.lxdctl_info:
    project: myapp
  register: _project_state

- name: Read its environment to write it into the container
  lxdctl.platform.lxdctl_info:
    project: myapp
    reveal: true
  register: _project_env
  no_log: true

- name: Read the project and the platform settings in one go
  lxdctl.platform.lxdctl_info:
    project: myapp
    platform: true
  register: _project_existing
"""

RETURN = r"""
exists:
  description: Whether O(project) is in the state.
  returned: when O(project) is given
  type: bool
project:
  description: The project row (empty when it does not exist).
  returned: when O(project) is given
  type: dict
projects:
  description: Every project row, ordered by name.
  returned: when O(project) is omitted
  type: list
  elements: dict
env_keys:
  description: The project's variables, C(key) and C(is_secret) only.
  returned: when the project exists
  type: list
  elements: dict
env:
  description: The decrypted variables, name to value.
  returned: when the project exists and O(reveal=true)
  type: dict
databases:
  description: The project's database rows (no passwords; C(has_password) says whether one is stored).
  returned: when the project exists
  type: list
  elements: dict
dns_records:
  description: The project's DNS record rows.
  returned: when the project exists
  type: list
  elements: dict
secrets:
  description: Names of the project's generated secrets (never values).
  returned: when the project exists
  type: list
  elements: str
last_deployment:
  description: The most recent deployment row, or null.
  returned: when the project exists
  type: dict
lock:
  description: The project lock (V(project:<name>)) if one is held, else null.
  returned: when O(project) is given
  type: dict
platform:
  description:
    - The platform settings a project uses, none of them secret.
    - C(public_address) (the address DNS records point at), C(pool), C(profile), C(images)
      (runtime to image alias), C(managed_zones) and C(default_zone) (lowercase, no trailing dot),
      C(cert_dir), C(memcached_port_range), C(mongo_configured) (whether an external MongoDB
      admin URL is registered; the URL itself is not returned).
  returned: when O(platform=true)
  type: dict
  sample: {"public_address": "10.77.0.1", "pool": "lxdctl", "profile": "lxdctl",
           "images": {"python": "lxdctl-python"}, "managed_zones": ["lxdctl.test"],
           "default_zone": "lxdctl.test", "cert_dir": "/etc/lxdctl/certs",
           "memcached_port_range": [21000, 21999], "mongo_configured": false}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config
from ansible_collections.lxdctl.platform.plugins.module_utils import _state


def argument_spec():
    spec = dict(
        project=dict(type=argspec_project_name),
        reveal=dict(type="bool", default=False),
        platform=dict(type="bool", default=False),
        config_path=dict(type="path"),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


def read(store, project, reveal):
    if project is None:
        return dict(changed=False, projects=store.list_projects())
    row = store.get_project(project)
    result = dict(changed=False, exists=row is not None, project=row or {},
                  lock=store.get_lock(_state.lock_name_for_project(project)))
    if row is None:
        return result
    result.update(
        env_keys=[dict(key=r["key"], is_secret=r["is_secret"]) for r in store.list_env(project)],
        databases=store.list_databases(project),
        dns_records=store.list_dns_records(project),
        secrets=[r["name"] for r in store.list_secrets(project)],
        last_deployment=store.last_deployment(project),
    )
    if reveal:
        result["env"] = store.get_env(project, reveal=True)
    return result


def _zone(value):
    return str(value or "").lower().rstrip(".")


def platform_settings(config):
    """Pure: the non-secret settings of a platform configuration that a project uses."""
    lxd = config.get("lxd") or {}
    dns = config.get("dns") or {}
    return dict(
        public_address=config.get("public_address") or lxd.get("bridge_address") or "",
        pool=lxd.get("pool") or "",
        profile=lxd.get("profile") or "lxdctl",
        images=dict(lxd.get("images") or {}),
        managed_zones=[_zone(z) for z in dns.get("managed_zones") or []],
        default_zone=_zone(dns.get("default_zone")),
        cert_dir=(config.get("nginx") or {}).get("cert_dir") or "/etc/lxdctl/certs",
        memcached_port_range=list((config.get("memcached") or {}).get("port_range") or [21000, 21999]),
        mongo_configured=bool((config.get("mongo") or {}).get("admin_url")),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        platform = None
        if module.params["platform"]:
            # Read first: a platform that is not initialised fails before the store is touched.
            platform = platform_settings(_platform_config.load(module.params["config_path"], required=True))
        with _state.open_from_params(module.params) as store:
            result = read(store, module.params["project"], module.params["reveal"])
        if platform is not None:
            result["platform"] = platform
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

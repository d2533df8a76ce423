#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxdctl_state
short_description: Write rows of the lxdctl state store (projects, databases, DNS records, deployments, env)
description:
  - Creates, updates or removes one entity of a project in the lxdctl state store, the store
    that C(lxdctl list), C(lxdctl status) and C(lxdctl env) read. A project created by
    C(ansible-playbook) or AWX through this module shows up exactly like one made by the CLI.
  - Values are taken literally. Env values with newlines or C({{ }}) are stored as they are and
    never templated.
  - Env values, database passwords and secrets are stored encrypted (AES-256-GCM); the module never
    returns them.
  - Every real change is appended to the audit log, with secret-looking keys redacted.
version_added: "0.1.0"
options:
  entity:
    description:
      - What to write.
      - V(project) - the project row itself; O(values) holds its fields (C(status), C(runtime),
        C(port), C(domain), C(ssl), C(db_type), C(cache_type), C(cpu), C(memory), C(disk),
        C(container_name), C(container_id), C(address), C(git_repository), C(git_branch),
        C(display_name), C(description), C(spec)). O(state=absent) removes the project and,
        by cascade, everything it owns in the state.
      - V(database) - O(values) needs C(type) and C(name), optionally C(host), C(port),
        C(username), C(connection_string), C(size_mb); the password goes in
        O(secret_values.password).
      - V(dns_record) - O(values) needs C(zone), C(name), C(type), C(content) (not for absent),
        optionally C(ttl) and C(priority).
      - V(deployment) - without C(values.id) a new deployment is recorded (always a change);
        with C(values.id) that deployment is updated (C(status), C(error_message), C(metadata) ...),
        or removed with O(state=absent).
      - V(env) - O(values) and O(secret_values) are variables to set (those in O(secret_values)
        are marked secret); with O(state=absent), the keys of O(values) and O(keys) are removed.
    type: str
    required: true
    choices: [project, database, dns_record, deployment, env]
  project:
    description: The project name (lowercase letters, digits and single hyphens, starting with a letter).
    type: str
    required: true
  values:
    description: The fields of the entity (see O(entity)).
    type: dict
    default: {}
  secret_values:
    description:
      - Sensitive fields, never logged. For O(entity=env), secret variables; for
        O(entity=database), C(password).
    type: dict
    default: {}
  keys:
    description: With O(entity=env) and O(state=absent), the variable names to remove.
    type: list
    elements: str
    default: []
  state:
    description: Whether the entity should exist.
    type: str
    choices: [present, absent]
    default: present
  actor:
    description: Who the audit log names. Defaults to E(LXDCTL_ACTOR) or the user running the module.
    type: str
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
author:
  - lxdctl authors
"""

EXAMPLES = r"""
- name: Record the project
  lxdctl.platform.lxdctl_state:
    entity: project
    project: myapp
    values:
      status: creating
      runtime: python
      port: 3000
      domain: myapp.example.com

- name: Record its database (password encrypted at rest)
  lxdctl.platform.lxdctl_state:
    entity: database
    project: myapp
    values: {type: postgresql, name: p_myapp, host: 10.77.0.1, port: 5432, username: p_myapp}
    secret_values:
      password: "{{ _project_db_password }}"

- name: Store the environment
  lxdctl.platform.lxdctl_state:
    entity: env
    project: myapp
    values:
      PORT: "3000"
    secret_values:
      DATABASE_URL: "{{ _project_database_url }}"

- name: Forget the project and everything it owns
  lxdctl.platform.lxdctl_state:
    entity: project
    project: myapp
    state: absent
"""

RETURN = r"""
row:
  description: The entity's row after the change (predicted in check mode), without secrets.
    For a database, C(has_password) says whether a password is stored. Absent when removed.
  returned: when O(state=present) and O(entity) is not V(env)
  type: dict
  sample: {"name": "myapp", "status": "running", "runtime": "python", "port": 3000}
env:
  description: The project's variables after the change, names and secret flags only.
  returned: when O(entity=env)
  type: list
  elements: dict
  sample: [{"key": "DATABASE_URL", "is_secret": true}, {"key": "PORT", "is_secret": false}]
changed_keys:
  description: The env variables that were (or would be) set or removed.
  returned: when O(entity=env)
  type: list
  elements: str
diff:
  description: C(before) and C(after) of the entity, without secrets.
  returned: always
  type: dict
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _state


def argument_spec():
    spec = dict(
        entity=dict(type="str", required=True, choices=["project", "database", "dns_record", "deployment", "env"]),
        project=dict(type=argspec_project_name, required=True),
        values=dict(type="dict", default={}),
        secret_values=dict(type="dict", default={}, no_log=True),
        keys=dict(type="list", elements="str", default=[], no_log=False),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        actor=dict(type="str"),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


class StateWriter:
    def __init__(self, module, store):
        self.module = module
        self.store = store
        self.params = module.params
        self.project = module.params["project"]
        self.values = dict(module.params["values"] or {})
        self.secret_values = dict(module.params["secret_values"] or {})
        self.actor = module.params["actor"] or _state.default_actor()

    def run(self):
        handler = getattr(self, "%s_%s" % (self.params["entity"], self.params["state"]))
        return handler()

    def _audit(self, action, detail):
        if not self.module.check_mode:
            self.store.audit(self.actor, action, self.project, detail)

    def _no_secrets(self, entity):
        if self.secret_values:
            raise LxdctlError("secret_values is not used with entity=%s; put the fields in values" % entity)

    # project -----------------------------------------------------------------------
    def project_present(self):
        self._no_secrets("project")
        before, after = self.store.plan_project(self.project, **self.values)
        changed = before is None or any(before.get(k) != after.get(k) for k in self.values)
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.upsert_project(self.project, **self.values)
            self._audit("project.create" if before is None else "project.update",
                        dict((k, row.get(k)) for k in self.values))
        return dict(changed=changed, row=row, diff=dict(before=before or {}, after=row))

    def project_absent(self):
        before = self.store.get_project(self.project)
        if before is not None and not self.module.check_mode:
            self.store.delete_project(self.project)
            self._audit("project.delete", {})
        return dict(changed=before is not None, diff=dict(before=before or {}, after={}))

    # database ----------------------------------------------------------------------
    def _database_key(self):
        fields = dict(self.values)
        dtype, name = fields.pop("type", None), fields.pop("name", None)
        if not dtype or not name:
            raise LxdctlError("entity=database needs values.type and values.name")
        return dtype, name, fields

    def database_present(self):
        dtype, name, fields = self._database_key()
        password = self.secret_values.pop("password", None)
        if self.secret_values:
            raise LxdctlError("secret_values of a database takes only password, got %s" % ", ".join(sorted(self.secret_values)))
        before, after, password_changed = self.store.plan_database(self.project, dtype, name, password=password, **fields)
        changed = before is None or password_changed or any(before.get(k) != after.get(k) for k in fields)
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.add_database(self.project, dtype, name, password=password, **fields)
            changed = changed or password_changed
            self._audit("database.write", dict(type=dtype, name=name, password_changed=password_changed))
        return dict(changed=changed, row=row, diff=dict(before=before or {}, after=row))

    def database_absent(self):
        self._no_secrets("database")
        dtype, name, _fields = self._database_key()
        before = self.store.get_database(self.project, dtype, name)
        if before is not None and not self.module.check_mode:
            self.store.remove_database(self.project, dtype, name)
            self._audit("database.remove", dict(type=dtype, name=name))
        return dict(changed=before is not None, diff=dict(before=before or {}, after={}))

    # dns record --------------------------------------------------------------------
    def _dns_args(self, need_content=True):
        fields = dict(self.values)
        missing = [k for k in ("zone", "name", "type") + (("content",) if need_content else ()) if not fields.get(k)]
        if missing:
            raise LxdctlError("entity=dns_record needs values.%s" % ", values.".join(missing))
        unknown = set(fields) - set(["zone", "name", "type", "content", "ttl", "priority"])
        if unknown:
            raise LxdctlError("entity=dns_record: unknown value(s) %s" % ", ".join(sorted(unknown)))
        return fields

    def dns_record_present(self):
        self._no_secrets("dns_record")
        f = self._dns_args()
        args = (self.project, f["zone"], f["name"], f["type"], f["content"], f.get("ttl", 3600), f.get("priority"))
        before, after = self.store.plan_dns_record(*args)
        changed = before is None or any(before.get(k) != after.get(k) for k in ("content", "ttl", "priority"))
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.add_dns_record(*args)
            self._audit("dns_record.write", dict((k, row[k]) for k in ("zone", "name", "type", "content", "ttl")))
        return dict(changed=changed, row=row, diff=dict(before=before or {}, after=row))

    def dns_record_absent(self):
        self._no_secrets("dns_record")
        f = self._dns_args(need_content=False)
        zone, name, rtype = self.store._dns_key(f["zone"], f["name"], f["type"])
        existing = [r for r in self.store.list_dns_records(self.project)
                    if (r["zone"], r["name"], r["type"]) == (zone, name, rtype)]
        if existing and not self.module.check_mode:
            self.store.remove_dns_record(self.project, zone, name, rtype)
            self._audit("dns_record.remove", dict(zone=zone, name=name, type=rtype))
        return dict(changed=bool(existing), diff=dict(before=existing[0] if existing else {}, after={}))

    # deployment --------------------------------------------------------------------
    def _deployment(self, deployment_id):
        row = self.store.get_deployment(deployment_id)
        if row is None or row["project_id"] != self.store._project_id(self.project):
            return None
        return row

    def deployment_present(self):
        self._no_secrets("deployment")
        fields = dict(self.values)
        deployment_id = fields.pop("id", None)
        if deployment_id is None:
            if self.module.check_mode:
                _state._normalize(_state.DEPLOYMENT_FIELDS, fields, "deployment field")
                self.store._project_id(self.project)
                return dict(changed=True, row=dict(fields, id=None), diff=dict(before={}, after=fields))
            row = self.store.create_deployment(self.project, **fields)
            self._audit("deployment.create", dict(id=row["id"], version=row["version"], status=row["status"]))
            return dict(changed=True, row=row, diff=dict(before={}, after=row))
        if self._deployment(deployment_id) is None:
            raise LxdctlError("Deployment %s of project %s does not exist in the state" % (deployment_id, self.project))
        before, after = self.store.plan_deployment(deployment_id, **fields)
        changed = any(before.get(k) != after.get(k) for k in after)
        row = after
        if changed and not self.module.check_mode:
            row, changed = self.store.update_deployment(deployment_id, **fields)
            self._audit("deployment.update", dict(id=row["id"], status=row["status"]))
        return dict(changed=changed, row=row, diff=dict(before=before, after=row))

    def deployment_absent(self):
        self._no_secrets("deployment")
        deployment_id = self.values.get("id")
        if deployment_id is None:
            raise LxdctlError("entity=deployment with state=absent needs values.id")
        before = self._deployment(deployment_id)
        if before is not None and not self.module.check_mode:
            self.store.delete_deployment(deployment_id)
            self._audit("deployment.delete", dict(id=before["id"]))
        return dict(changed=before is not None, diff=dict(before=before or {}, after={}))

    # env ---------------------------------------------------------------------------
    def _env_rows(self):
        return [dict(key=r["key"], is_secret=r["is_secret"]) for r in self.store.list_env(self.project)]

    def env_present(self):
        both = set(self.values) & set(self.secret_values)
        if both:
            raise LxdctlError("env variable(s) %s are in both values and secret_values" % ", ".join(sorted(both)))
        if self.params["keys"]:
            raise LxdctlError("keys is only used with state=absent; put variables in values or secret_values")
        merged = dict(self.values)
        merged.update(self.secret_values)
        secret_keys = set(self.secret_values)
        before = self._env_rows()
        changed_keys = self.store.plan_env(self.project, merged, secret_keys)
        if changed_keys and not self.module.check_mode:
            changed_keys = self.store.set_env(self.project, merged, secret_keys)
            self._audit("env.set", dict(keys=changed_keys))
            after = self._env_rows()
        else:
            current = dict((r["key"], r) for r in before)
            current.update((k, dict(key=k, is_secret=k in secret_keys)) for k in changed_keys)
            after = [current[k] for k in sorted(current)]
        return dict(changed=bool(changed_keys), changed_keys=changed_keys, env=after,
                    diff=dict(before=dict(env=before), after=dict(env=after)))

    def env_absent(self):
        self._no_secrets("env")
        keys = sorted(set(self.params["keys"]) | set(self.values))
        before = self._env_rows()
        existing = set(r["key"] for r in before)
        removed = [k for k in keys if k in existing]
        for key in keys:
            _state._names.env_key(key, "keys")
        if removed and not self.module.check_mode:
            removed = self.store.unset_env(self.project, removed)
            self._audit("env.unset", dict(keys=removed))
        after = [r for r in before if r["key"] not in removed]
        return dict(changed=bool(removed), changed_keys=removed, env=after,
                    diff=dict(before=dict(env=before), after=dict(env=after)))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        with _state.open_from_params(module.params) as store:
            result = StateWriter(module, store).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

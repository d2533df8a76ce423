#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: mysql_tenant
short_description: A MariaDB database and its user for one tenant
description:
  - Creates a database and a user C('<owner>'@'<tenant_host_pattern>') that may connect
    only from the platform's container subnet, with C(ALL PRIVILEGES) on that database
    only (no global privileges) and a C(MAX_USER_CONNECTIONS) limit.
  - The password is sent as its C(mysql_native_password) hash, and compared with the stored
    hash, so the same password again reports no change.
  - With O(state=absent), the user's open connections are killed, then the database and
    the user are dropped.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description: The database, a lowercase SQL identifier (for a project, C(p_<project with _>)).
    type: str
    required: true
    aliases: [database]
  owner:
    description: The user name. Defaults to O(name).
    type: str
  password:
    description:
      - The user's password. Required with O(state=present).
      - Used when the user is created; for an existing user only with O(rotate_password=true)
        or when the user has no password at all.
    type: str
  rotate_password:
    description: Set O(password) on an existing user too; a change only when the stored hash differs.
    type: bool
    default: false
  connection_limit:
    description: The user's C(MAX_USER_CONNECTIONS).
    type: int
    default: 20
  tenant_host_pattern:
    description:
      - The account's host part. Defaults to the platform subnet (C(lxd.subnet)) as a
        pattern, e.g. C(10.77.0.%) for C(10.77.0.0/24).
    type: str
  state:
    description: Whether the database and user exist.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.mysql
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Database and user of project myapp
  lxdctl.platform.mysql_tenant:
    name: p_myapp
    password: "{{ myapp_db_password }}"
  no_log: true

- name: Remove both
  lxdctl.platform.mysql_tenant:
    name: p_myapp
    state: absent
"""

RETURN = r"""
database:
  description: The database name.
  returned: always
  type: str
  sample: p_myapp
owner:
  description: The user name.
  returned: always
  type: str
  sample: p_myapp
user_host:
  description: The host part of the account.
  returned: always
  type: str
  sample: 10.77.0.%
host:
  description: The address tenants connect to (C(mysql.tenant_host) of the platform configuration).
  returned: always
  type: str
  sample: 10.77.0.1
port:
  description: The server port.
  returned: always
  type: int
  sample: 3306
password_set:
  description: Whether the run set (or, in check mode, would set) the password.
  returned: always
  type: bool
queries:
  description: The statements executed (or planned, in check mode), password hashes masked.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _mysql, _service


def argument_spec():
    return _service.tenant_argument_spec(dict(
        name=dict(type=_mysql.argspec_identifier, required=True, aliases=["database"]),
        owner=dict(type=_mysql.argspec_identifier),
        connection_limit=dict(type="int", default=20),
        tenant_host_pattern=dict(type=_mysql.argspec_host_pattern),
    ), _mysql.CONNECTION_ARGSPEC)


def validate(params):
    if params["connection_limit"] < 1:
        raise LxdctlError("connection_limit: must be a positive number")
    _service.validate_tenant(params)


class TenantService(_service.SqlTenantService):
    def run(self):
        params = self.params
        database = params["name"]
        user = params["owner"] or database
        host = params["tenant_host_pattern"] or _mysql.default_host_pattern()
        limit = params["connection_limit"]
        account = self.client.get_account(user, host)
        db_exists = self.client.database_exists(database)
        has_grant = account is not None and self.client.has_grant(database, user, host)
        if account is not None:
            account["extra_privileges"] = self.client.extra_privileges(database, user, host)
        before = _mysql.state_view(database, user, host, account, db_exists, has_grant)
        after = _mysql.desired_view(database, user, host, limit, params["state"])
        password_set = False
        if params["state"] == "present":
            statements, password_set = _mysql.plan_present(
                database, user, host, params["password"], limit, params["rotate_password"],
                account, db_exists, has_grant)
        else:
            sessions = self.client.sessions(user) if account is not None else []
            statements = _mysql.plan_absent(database, user, host, account, db_exists, sessions)
        changed = any(not stmt.sql.startswith("KILL") for stmt in statements)
        return self.finish(statements, changed, before, after, password_set, bool(account),
                           database=database, owner=user, user_host=host)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_if=_service.TENANT_REQUIRED_IF,
                           supports_check_mode=True)
    _service.run_service(module, _mysql.MariaDB, TenantService, validate=validate)


if __name__ == "__main__":
    main()

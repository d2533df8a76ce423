#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_backup
short_description: Take an encrypted backup of a project's database, or remove its backups
description:
  - Dumps the project's PostgreSQL database with C(pg_dump -Fc) or its MariaDB database with
    C(mariadb-dump), encrypts the dump with AES-256-GCM in chunks bound to the project, the
    database and the backup id, and stores it under O(backup_dir)C(/<project>/) with a manifest
    that records its SHA-256 checksum.
  - The key is a root-only key file (O(backup_key_file)), created on first use.
  - Older backups beyond O(keep) (per database) are removed after the new one is safely stored.
  - The dump is written to a temporary file, fsynced and renamed; on a full disk the module fails
    with a clear message and the earlier backups and the manifest stay as they were.
  - The admin password reaches pg_dump / mariadb-dump through the environment, never the command line.
  - Every run with O(state=present) takes a new backup, so it always reports a change.
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  project:
    description: The project whose database is backed up.
    type: str
    required: true
  db:
    description:
      - V(postgres) or V(mysql). Defaults to the project's only database (an error when it has both).
    type: str
    choices: [postgres, mysql]
  backup_dir:
    description: The directory that holds one sub-directory per project.
    type: path
    default: /var/lib/lxdctl/backups
  backup_key_file:
    description: The 32-byte encryption key, created 0600 when missing.
    type: path
    default: /etc/lxdctl/backup.key
  keep:
    description: How many backups of each database to keep.
    type: int
    default: 7
  state:
    description: V(present) takes a backup; V(absent) removes all backups of the project.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.postgres
  - lxdctl.platform.mysql
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Back up the database of myapp, keep the last 14
  lxdctl.platform.db_backup:
    project: myapp
    db: postgres
    keep: 14
  register: backup

- name: Remove every backup of myapp
  lxdctl.platform.db_backup:
    project: myapp
    state: absent
"""

RETURN = r"""
backup:
  description: The manifest entry of the new backup.
  returned: when a backup was taken
  type: dict
  sample: {"id": "20260101T120000Z-a1b2c3", "db_type": "postgres", "database": "p_myapp", "size": 2048,
           "sha256": "9f8...", "file": "20260101T120000Z-a1b2c3.postgres.bak"}
removed:
  description: The ids of the backups removed by the retention policy.
  returned: always
  type: list
  elements: str
path:
  description: The full path of the new backup file.
  returned: when a backup was taken
  type: str
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _backup, _mysql, _postgres, _state


def argument_spec():
    spec = dict(
        project=dict(type=argspec_project_name, required=True),
        db=dict(type="str", choices=list(_backup.DB_TYPES)),
        backup_dir=dict(type="path", default=_backup.DEFAULT_BACKUP_DIR),
        backup_key_file=dict(type="path", default=_backup.DEFAULT_KEY_FILE, no_log=False),
        keep=dict(type="int", default=_backup.DEFAULT_KEEP),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(_postgres.CONNECTION_ARGSPEC)
    spec.update(_mysql.CONNECTION_ARGSPEC)
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


class BackupService(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.store = _backup.BackupStore(self.params["backup_dir"], self.params["project"], self.params["backup_key_file"])

    def run(self):
        if self.params["state"] == "absent":
            existing = _backup.list_backups(self.params["backup_dir"], self.params["project"])
            exists = os.path.isdir(self.store.dir)
            if exists and not self.module.check_mode:
                _backup.remove_all(self.params["backup_dir"], self.params["project"])
            return dict(changed=exists, removed=[b["id"] for b in existing],
                        diff=dict(before={"backups": [b["id"] for b in existing]}, after={"backups": []}))
        if self.params["keep"] < 1:
            raise LxdctlError("keep: must be at least 1")
        dtype, database, _owner = _backup.project_database(self.params, self.params["db"])
        conn = _backup.connection(self.params, dtype)
        if self.module.check_mode:
            return dict(changed=True, removed=[], diff=dict(before={}, after={"backup": "new %s backup of %s" % (dtype, database)}))
        if dtype == "postgres":
            argv, env = _backup.pg_dump_argv(conn, database), _backup.pg_env(conn)
        else:
            argv, env = _backup.mysql_dump_argv(conn, database), _backup.my_env(conn)
        entry, removed = self.store.backup(dtype, database, argv, env, keep=self.params["keep"],
                                           secrets_=[conn["admin_password"]])
        return dict(changed=True, backup=entry, path=self.store.file_for(entry["id"], dtype),
                    removed=[r["id"] for r in removed],
                    diff=dict(before={}, after={"backup": entry["id"]}))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = BackupService(module).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

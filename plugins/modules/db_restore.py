#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_restore
short_description: Restore a project's database from one of its encrypted backups
description:
  - Checks the backup before it touches any database - its manifest entry, size and SHA-256,
    its header (the project, the database, the key id) and every encrypted chunk - and refuses a
    corrupt, truncated or foreign backup (another project's, or one encrypted with another key).
  - Without O(into), the project's database is replaced. PostgreSQL - the dump is restored into
    a fresh database first, then the two are swapped, so a failed restore leaves the original as
    it was. MariaDB - the dump is loaded into the scratch database C(<db>__restoring), then one
    C(RENAME TABLE) (atomic - all tables or none) moves the live tables to C(<db>__replaced) and
    the restored ones in; the database itself and its grants stay. A failed or killed restore
    leaves the original as it was, and the next restore first drops what a killed one left.
    Views, triggers, routines and events cannot be moved by C(RENAME TABLE); a database or
    backup with any is refused before anything is replaced (restore it with O(into) instead).
  - With O(into), a new database of that name is created for the same owner (a tenant database -
    C(CONNECT) only for the owner on PostgreSQL, C(ALL) on it for the owner's accounts on MariaDB)
    and the dump is restored there. An existing O(into) database is refused.
  - Always reports a change (a restore rewrites the data).
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  project:
    description: The project whose database is restored.
    type: str
    required: true
  db:
    description: V(postgres) or V(mysql). Defaults to the project's only database.
    type: str
    choices: [postgres, mysql]
  backup:
    description: The backup id (C(lxdctl db backups)); defaults to the newest of that database type.
    type: str
  into:
    description: Restore into this new database (a lowercase SQL identifier) instead of replacing the project's.
    type: str
  verify_only:
    description: Only check the backup; touch no database.
    type: bool
    default: false
  backup_dir:
    description: The directory that holds one sub-directory per project.
    type: path
    default: /var/lib/lxdctl/backups
  backup_key_file:
    description: The encryption key file.
    type: path
    default: /etc/lxdctl/backup.key
extends_documentation_fragment:
  - lxdctl.platform.postgres
  - lxdctl.platform.mysql
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Put myapp's database back to its newest backup
  lxdctl.platform.db_restore:
    project: myapp

- name: Restore one backup next to the live database
  lxdctl.platform.db_restore:
    project: myapp
    backup: 20260101T120000Z-a1b2c3
    into: p_myapp_restored
"""

RETURN = r"""
backup:
  description: The manifest entry of the backup restored.
  returned: always
  type: dict
database:
  description: The database written.
  returned: unless O(verify_only)
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _backup, _mysql, _postgres, _state

# Seconds the MariaDB swap waits for other sessions' locks on the tables before it gives up
# (and changes nothing); the server's default would wait a year.
SWAP_LOCK_WAIT = 30


def argument_spec():
    spec = dict(
        project=dict(type=argspec_project_name, required=True),
        db=dict(type="str", choices=list(_backup.DB_TYPES)),
        backup=dict(type="str"),
        into=dict(type="str"),
        verify_only=dict(type="bool", default=False),
        backup_dir=dict(type="path", default=_backup.DEFAULT_BACKUP_DIR),
        backup_key_file=dict(type="path", default=_backup.DEFAULT_KEY_FILE, no_log=False),
    )
    spec.update(_postgres.CONNECTION_ARGSPEC)
    spec.update(_mysql.CONNECTION_ARGSPEC)
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


class RestoreService(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.project = self.params["project"]
        self.store = _backup.BackupStore(self.params["backup_dir"], self.project, self.params["backup_key_file"],
                                         create_key=False)

    def run(self):
        p = self.params
        if p["backup"] is not None:
            _backup.backup_id(p["backup"])
        if p["into"] is not None:
            _backup.sql_identifier(p["into"])
        dtype, database, owner = _backup.project_database(p, p["db"])
        entry = self.store.entry(p["backup"], dtype)
        if entry["database"] != database:
            raise LxdctlError("backup %s is of database %s, but project %s's %s database is %s"
                              % (entry["id"], entry["database"], self.project, dtype, database))
        self.store.verify(entry)  # raises before anything is touched
        if p["verify_only"]:
            return dict(changed=False, backup=entry)
        target = p["into"] or database
        if p["into"] == database:
            raise ValidationError("into", "names the project's own database; leave --into out to replace it")
        conn = _backup.connection(p, dtype)
        if self.module.check_mode:
            return dict(changed=True, backup=entry, database=target,
                        diff=dict(before={}, after={"restore": "%s into %s" % (entry["id"], target)}))
        if dtype == "postgres":
            self._postgres(entry, conn, database, owner, p["into"])
        else:
            self._mysql(entry, conn, database, owner, p["into"])
        return dict(changed=True, backup=entry, database=target,
                    diff=dict(before={}, after={"restore": "%s into %s" % (entry["id"], target)}))

    # PostgreSQL: restore into a fresh database, then swap it in ---------------------------------
    # Crash safety: the scratch names are fixed (_postgres.restore_names), the swap is one
    # transaction (both renames or neither), and every restore first clears what a killed one
    # left (a half-loaded copy, a replaced database not yet dropped, connections still refused).
    def _postgres(self, entry, conn, database, owner, into):
        pg = _postgres.Postgres(self.params)
        argv_env = (_backup.pg_env(conn), [conn["admin_password"]])
        try:
            self._recover_postgres(pg, database)
            current = pg.get_database(database, owner)
            if current is None:
                raise LxdctlError("database %s of project %s does not exist" % (database, self.project))
            owner = current["owner"]
            work, old = _postgres.restore_names(database)
            if into:
                if pg.get_database(into, owner) is not None:
                    raise LxdctlError("database %s exists already; --into needs a new name" % into)
                work = into
            pg.execute([_postgres.create_database(work, owner), _postgres.revoke_public(work),
                        _postgres.grant_connect(work, owner)])
            try:
                self.store.stream_into(entry, _backup.pg_restore_argv(conn, work), argv_env[0], argv_env[1])
            except LxdctlError as exc:
                pg.execute([_postgres.drop_database(work)])
                raise LxdctlError("Restore of backup %s failed, %s was left as it was: %s"
                                  % (entry["id"], database if not into else "nothing", exc.msg))
            if into:
                return
            pg.execute([
                _postgres.allow_connections(database, False),
                _postgres.Statement("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                    "WHERE datname = {db} AND pid <> pg_backend_pid()",
                                    transactional=False, db=("literal", database)),
            ])
            try:
                # terminated sessions take a moment to leave; until then a rename is refused
                pg.execute_atomic([_postgres.rename_database(database, old), _postgres.rename_database(work, database)],
                                  attempts=50, retry_on="is being accessed by other users")
            except LxdctlError:
                pg.execute([_postgres.allow_connections(database, True), _postgres.drop_database(work)])
                raise
            pg.execute([_postgres.drop_database(old)])
        finally:
            pg.close()

    @staticmethod
    def _recover_postgres(pg, database):
        """Undo what a killed restore of ``database`` left; a no-op after a clean one."""
        work, old = _postgres.restore_names(database)
        found = pg.database_names([database, work, old])
        statements = []
        if database not in found and old in found:
            statements.append(_postgres.rename_database(old, database))  # a swap cut short: put it back
            found[database] = found.pop(old)
        if work in found:
            statements.append(_postgres.drop_database(work))
        if old in found:
            statements.append(_postgres.drop_database(old))
        if found.get(database) is False:
            statements.append(_postgres.allow_connections(database, True))
        if statements:
            pg.execute(statements)

    # MariaDB: load into a fixed scratch database, then swap the tables in ----------------------
    # Crash safety: the scratch names are fixed (_mysql.restore_names); the swap is one RENAME
    # TABLE, which MariaDB runs atomically (all tables move or none), so until it has run the
    # project's database is untouched and after it the restore is complete.  Every restore first
    # drops what a killed one left: the half-loaded copy, or the replaced tables not yet dropped.
    def _mysql(self, entry, conn, database, owner, into):
        my = _mysql.MariaDB(self.params)
        load = (_backup.my_env(conn), [conn["admin_password"]])
        try:
            if not my.database_exists(database):
                raise LxdctlError("database %s of project %s does not exist" % (database, self.project))
            if into:
                self._mysql_into(my, entry, conn, database, owner, into, load)
                return
            work, old = _mysql.restore_names(database)
            my.execute([_mysql.drop_database(work), _mysql.drop_database(old)])  # a killed restore's
            self._mysql_movable(my, database, "the project's database %s" % database)
            my.execute([_mysql.create_database(work), _mysql.create_database(old)])
            try:
                self.store.stream_into(entry, _backup.mysql_load_argv(conn, work), load[0], load[1])
                restored = self._mysql_movable(my, work, "backup %s" % entry["id"])
                current = self._mysql_movable(my, database, "the project's database %s" % database)
                # The owner's sessions would hold the tables the swap moves; a restore replaces
                # the data under them anyway (PostgreSQL's path ends them too).
                my.execute([_mysql.kill_connection(pid) for pid in my.sessions(owner)])
                swap = _mysql.swap_tables(database, work, old, current["tables"], restored["tables"])
                if swap is not None:
                    my.execute([_mysql.lock_wait_timeout(SWAP_LOCK_WAIT), swap])
            except LxdctlError as exc:
                raise LxdctlError("Restore of backup %s failed, %s was left as it was: %s"
                                  % (entry["id"], database, exc.msg))
            finally:
                my.execute([_mysql.drop_database(work), _mysql.drop_database(old)])
        finally:
            my.close()

    @staticmethod
    def _mysql_movable(my, database, what):
        """``database``'s objects; refuses those a RENAME TABLE cannot carry to another database."""
        objects = my.schema_objects(database)
        fixed = ["%s %s" % (kind[:-1], ", ".join(objects[kind])) for kind in ("views", "triggers", "routines", "events")
                 if objects[kind]]
        if fixed:
            raise LxdctlError("%s has %s, which cannot be swapped in atomically; nothing was replaced. Restore it "
                              "next to the live database with --into NAME instead" % (what, "; ".join(fixed)))
        return objects

    def _mysql_into(self, my, entry, conn, database, owner, into, load):
        if my.database_exists(into):
            raise LxdctlError("database %s exists already; --into needs a new name" % into)
        hosts = [_mysql._text(r[0]) for r in my._query("Failed to read the accounts of %s" % owner,
                                                       "SELECT Host FROM mysql.user WHERE User = %s", (owner,))]
        my.execute([_mysql.create_database(into)] + [_mysql.grant_all(into, owner, h) for h in hosts])
        try:
            self.store.stream_into(entry, _backup.mysql_load_argv(conn, into), load[0], load[1])
        except LxdctlError as exc:
            my.execute([_mysql.drop_database(into)])
            raise LxdctlError("Restore of backup %s into %s failed: %s" % (entry["id"], into, exc.msg))


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = RestoreService(module).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

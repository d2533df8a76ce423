#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_file
short_description: Put a file into an LXD instance
description:
  - Writes a file into an instance through the LXD file API (pylxd), with owner, group and mode.
  - Changed only when the content (compared by SHA-256), mode, owner or group differ.
  - LXD keeps an existing file's owner and mode when it is overwritten, so when those differ
    the file is deleted and written again with the wanted ones.
  - O(content) is always treated as a secret (env files carry credentials). It is a C(no_log)
    option, and the diff shows SHA-256 checksums, size, mode and owner, never the content.
  - O(owner) and O(group) may be names, looked up in the instance's C(/etc/passwd) and
    C(/etc/group) through the file API. With O(create_owner=true) a missing owner is created as a
    system user with a group of its own name (C(useradd) run through the LXD exec API with an
    argument list; it needs a running instance), and O(parents=true) creates missing parent
    directories, so one task can put an app's file into a fresh container.
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
options:
  instance:
    description: The instance name.
    type: str
    required: true
  path:
    description: Absolute path of the file inside the instance.
    type: str
    required: true
  content:
    description: The file's content. Mutually exclusive with O(src).
    type: str
  src:
    description: A file on the managed host to copy in. Mutually exclusive with O(content).
    type: path
  owner:
    description: The owner inside the instance, a numeric uid or a user name.
    type: raw
    default: 0
  group:
    description:
      - The group inside the instance, a numeric gid or a group name.
      - Defaults to the primary group of O(owner) when that is a name, else to V(0).
    type: raw
  create_owner:
    description:
      - Create O(owner) (a name) when the instance has no such user, as a system user with a
        group of the same name, home O(owner_home) (created) and shell C(/bin/sh).
    type: bool
    default: false
  owner_home:
    description: The home directory of an owner created by O(create_owner). Defaults to useradd's default.
    type: str
  parents:
    description: Create the missing parent directories of O(path) (owner root, mode O(directory_mode)).
    type: bool
    default: false
  directory_mode:
    description: Octal mode of the parent directories that O(parents) creates.
    type: str
    default: "0755"
  mode:
    description: Octal mode as a string, e.g. V('0640').
    type: str
    default: "0644"
  state:
    description: V(present) writes the file; V(absent) deletes it.
    type: str
    choices: [present, absent]
    default: present
"""

EXAMPLES = r"""
- name: The app's environment file, owned by the app user, created with its directory if need be
  lxdctl.platform.lxd_file:
    instance: lxdctl-myapp
    path: /etc/lxdctl/app.env
    content: "PORT='3000'\n"
    owner: app
    create_owner: true
    owner_home: /srv/app
    parents: true
    mode: "0600"

- name: The app's environment file
  lxdctl.platform.lxd_file:
    instance: lxdctl-myapp
    path: /etc/lxdctl/app.env
    content: |
      DATABASE_URL=postgresql://p_myapp:secret@10.77.0.1:5432/p_myapp
    owner: 1000
    group: 1000
    mode: "0600"
"""

RETURN = r"""
owner_created:
  description: Whether O(owner) was (or would be) created by O(create_owner).
  returned: always
  type: bool
directories_created:
  description: The parent directories that were (or would be) created by O(parents).
  returned: always
  type: list
  elements: str
uid:
  description: The numeric owner of the file (null in check mode when the owner would be created).
  returned: when state is present
  type: int
gid:
  description: The numeric group of the file (null in check mode when the owner would be created).
  returned: when state is present
  type: int
path:
  description: The path inside the instance.
  returned: always
  type: str
sha256:
  description: SHA-256 of the content after the task (null when absent).
  returned: always
  type: str
mode:
  description: The mode after the task, as an octal string.
  returned: when state is present
  type: str
"""

import hashlib
import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

_MODE_RE = re.compile(r"^0?[0-7]{3,4}$")
_ACCOUNT_RE = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")
# useradd exit status 9: the user exists (a concurrent run created it first).
_USERADD_EXISTS = 9


def validate_path(path):
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096:
        raise ValidationError("path", "must be an absolute path", path)
    if any(ord(ch) < 32 for ch in path) or "/../" in path + "/" or path.endswith("/"):
        raise ValidationError("path", "must not contain control characters or '..' and must name a file", path)
    return path


def parse_mode(mode, field="mode"):
    if not isinstance(mode, str) or not _MODE_RE.fullmatch(mode):
        raise ValidationError(field, "must be an octal mode such as '0644'", mode)
    return int(mode, 8)


def parse_account(value, field):
    """An owner or group: a numeric id (int) or an account name (str)."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a numeric id or a user/group name", value)
    if isinstance(value, int) or (isinstance(value, str) and value.isdigit()):
        number = int(value)
        if not 0 <= number <= 4294967294:
            raise ValidationError(field, "must be a numeric id from 0 to 4294967294", value)
        return number
    if isinstance(value, str) and _ACCOUNT_RE.fullmatch(value):
        return value
    raise ValidationError(field, "must be a numeric id or a name of lowercase letters, digits, _ and -", value)


def parse_accounts(data):
    """Pure: ``{name: (id, primary gid)}`` from /etc/passwd text (or ``{name: (gid, gid)}`` for /etc/group)."""
    accounts = {}
    for line in (data or b"").decode("utf-8", "replace").splitlines():
        fields = line.split(":")
        if len(fields) >= 4 and fields[2].isdigit():
            primary = fields[3] if fields[3].isdigit() else fields[2]
            accounts.setdefault(fields[0], (int(fields[2]), int(primary)))
    return accounts


def missing_parents(path, exists):
    """Pure: the ancestors of ``path`` that ``exists(dir)`` says are missing, top-down."""
    missing = []
    parent = path.rsplit("/", 1)[0]
    while parent and not exists(parent):
        missing.append(parent)
        parent = parent.rsplit("/", 1)[0]
    return list(reversed(missing))


def sha256(data):
    return hashlib.sha256(data).hexdigest() if data is not None else None


def file_plan(existing, wanted):
    """Pure: compare the existing file (dict or None) to the wanted one (dict or None for absent)."""
    def view(entry):
        if entry is None:
            return {}
        return {"sha256": sha256(entry["content"]), "size": len(entry["content"]), "mode": "%04o" % entry["mode"],
                "owner": entry["uid"], "group": entry["gid"]}

    before, after = view(existing), view(wanted)
    return before != after, before, after


class Accounts(object):
    """Owner and group names of one instance, read through the file API; creates a missing owner."""

    def __init__(self, module, client, instance):
        self.module = module
        self.client = client
        self.instance = instance
        self._tables = {}

    def table(self, path):
        if path not in self._tables:
            entry = _lxd.read_file(self.client, self.instance, path)
            self._tables[path] = parse_accounts(entry["content"] if entry and entry["type"] == "file" else b"")
        return self._tables[path]

    def create_user(self, name, home):
        argv = ["useradd", "--system", "--user-group", "--create-home", "--shell", "/bin/sh"]
        if home:
            argv += ["--home-dir", home]
        rc, _out, err = _lxd.instance_exec(self.client, self.instance, argv + ["--", name])
        if rc not in (0, _USERADD_EXISTS):
            raise LxdctlError("owner: cannot create user %s in instance %s: %s"
                              % (name, self.instance, err.decode("utf-8", "replace").strip() or "useradd exit %d" % rc))
        self._tables.clear()

    def resolve(self, owner, group, create, home, running):
        """``(uid, gid, created)``; uid/gid are None in check mode when the owner would be created."""
        created = False
        uid = gid = None
        if isinstance(owner, int):
            uid, gid = owner, 0
        else:
            user = self.table("/etc/passwd").get(owner)
            if user is None:
                if not create:
                    raise LxdctlError("owner: instance %s has no user %s (set create_owner to create it)"
                                      % (self.instance, owner))
                if not running:
                    raise LxdctlError("create_owner: instance %s must be running to create user %s"
                                      % (self.instance, owner))
                created = True
                if not self.module.check_mode:
                    self.create_user(owner, home)
                    user = self.table("/etc/passwd").get(owner)
                    if user is None:
                        raise LxdctlError("owner: user %s is still missing in instance %s after useradd"
                                          % (owner, self.instance))
            if user is not None:
                uid, gid = user
        if isinstance(group, int):
            gid = group
        elif group is not None:
            found = self.table("/etc/group").get(group)
            if found is None and not (created and group == owner):
                raise LxdctlError("group: instance %s has no group %s" % (self.instance, group))
            gid = found[0] if found else None
        return uid, gid, created


class FileService(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client

    def read_data(self):
        p = self.module.params
        if p["content"] is None and p["src"] is None:
            raise LxdctlError("one of content or src is required with state=present")
        if p["src"] is None:
            return p["content"].encode("utf-8")
        try:
            with open(p["src"], "rb") as handle:
                return handle.read()
        except (IOError, OSError) as exc:
            raise LxdctlError("Cannot read src %s: %s" % (p["src"], exc.strerror))

    def make_parents(self, instance, path):
        """Create the missing parent directories (not in check mode); returns them."""
        def exists(directory):
            entry = _lxd.read_file(self.client, instance, directory)
            if entry is not None and entry["type"] != "directory":
                raise LxdctlError("%s in instance %s is a %s, not a directory" % (directory, instance, entry["type"]))
            return entry is not None

        missing = missing_parents(path, exists)
        if not self.module.check_mode:
            mode = parse_mode(self.module.params["directory_mode"], "directory_mode")
            for directory in missing:
                _lxd.make_directory(self.client, instance, directory, mode=mode)
        return missing

    def run(self):
        p = self.module.params
        path = validate_path(p["path"])
        owner = parse_account(p["owner"], "owner")
        group = None if p["group"] is None else parse_account(p["group"], "group")
        data = self.read_data() if p["state"] == "present" else None
        record = _lxd.get_instance(self.client, p["instance"])
        if record is None:
            raise LxdctlError("Instance %s does not exist" % p["instance"])
        created, directories, wanted = False, [], None
        if p["state"] == "present":
            uid, gid, created = Accounts(self.module, self.client, p["instance"]).resolve(
                owner, group, p["create_owner"], p["owner_home"], record.get("status") == "Running")
            if p["parents"]:
                directories = self.make_parents(p["instance"], path)
            wanted = {"content": data, "mode": parse_mode(p["mode"]),
                      "uid": owner if uid is None else uid, "gid": group if gid is None else gid}
        existing = None if directories else _lxd.read_file(self.client, p["instance"], path)
        if existing is not None and existing["type"] != "file":
            raise LxdctlError("%s in instance %s is a %s, not a file" % (path, p["instance"], existing["type"]))
        changed, before, after = file_plan(existing, wanted)
        if changed and not self.module.check_mode:
            if wanted is None:
                _lxd.delete_file(self.client, p["instance"], path)
            else:
                if existing is not None and (existing["mode"], existing["uid"], existing["gid"]) != (
                        wanted["mode"], wanted["uid"], wanted["gid"]):
                    # LXD 5.0 keeps an existing file's owner and mode on overwrite: recreate it,
                    # so the new file never exists with the old (maybe wider) permissions.
                    _lxd.delete_file(self.client, p["instance"], path)
                _lxd.write_file(self.client, p["instance"], path, wanted["content"], mode=wanted["mode"],
                                uid=wanted["uid"], gid=wanted["gid"])
        changed = changed or created or bool(directories)
        result = dict(changed=changed, path=path, sha256=after.get("sha256"), owner_created=created,
                      directories_created=directories,
                      diff=dict(before=before, after=after, before_header=path, after_header=path))
        if wanted is not None:
            result.update(mode=after["mode"], uid=_numeric(wanted["uid"]), gid=_numeric(wanted["gid"]))
        return result


def _numeric(value):
    return value if isinstance(value, int) else None


def argument_spec():
    spec = dict(
        instance=dict(type=_names.argspec_instance_name, required=True),
        path=dict(type="str", required=True),
        content=dict(type="str", no_log=True),
        src=dict(type="path"),
        owner=dict(type="raw", default=0),
        group=dict(type="raw"),
        create_owner=dict(type="bool", default=False),
        owner_home=dict(type="str"),
        parents=dict(type="bool", default=False),
        directory_mode=dict(type="str", default="0755"),
        mode=dict(type="str", default="0644"),
        state=dict(type="str", default="present", choices=["present", "absent"]),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("content", "src")])
    try:
        p = module.params
        validate_path(p["path"])
        parse_mode(p["mode"])
        parse_mode(p["directory_mode"], "directory_mode")
        parse_account(p["owner"], "owner")
        if p["group"] is not None:
            parse_account(p["group"], "group")
        if p["owner_home"] is not None and (not p["owner_home"].startswith("/") or any(ord(c) < 32 for c in p["owner_home"])):
            raise ValidationError("owner_home", "must be an absolute path", p["owner_home"])
        client = _lxd.connect(p)
        result = FileService(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

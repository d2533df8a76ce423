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
    description: Numeric uid inside the instance.
    type: int
    default: 0
  group:
    description: Numeric gid inside the instance.
    type: int
    default: 0
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


def validate_path(path):
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 4096:
        raise ValidationError("path", "must be an absolute path", path)
    if any(ord(ch) < 32 for ch in path) or "/../" in path + "/" or path.endswith("/"):
        raise ValidationError("path", "must not contain control characters or '..' and must name a file", path)
    return path


def parse_mode(mode):
    if not isinstance(mode, str) or not _MODE_RE.fullmatch(mode):
        raise ValidationError("mode", "must be an octal mode such as '0644'", mode)
    return int(mode, 8)


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


class FileService(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client

    def run(self):
        p = self.module.params
        path = validate_path(p["path"])
        wanted = None
        if p["state"] == "present":
            if p["content"] is None and p["src"] is None:
                raise LxdctlError("one of content or src is required with state=present")
            if p["src"] is not None:
                try:
                    with open(p["src"], "rb") as handle:
                        data = handle.read()
                except (IOError, OSError) as exc:
                    raise LxdctlError("Cannot read src %s: %s" % (p["src"], exc.strerror))
            else:
                data = p["content"].encode("utf-8")
            wanted = {"content": data, "mode": parse_mode(p["mode"]), "uid": p["owner"], "gid": p["group"]}
        if _lxd.get_instance(self.client, p["instance"]) is None:
            raise LxdctlError("Instance %s does not exist" % p["instance"])
        existing = _lxd.read_file(self.client, p["instance"], path)
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
        result = dict(changed=changed, path=path, sha256=after.get("sha256"),
                      diff=dict(before=before, after=after, before_header=path, after_header=path))
        if wanted is not None:
            result["mode"] = after["mode"]
        return result


def argument_spec():
    spec = dict(
        instance=dict(type=_names.argspec_instance_name, required=True),
        path=dict(type="str", required=True),
        content=dict(type="str", no_log=True),
        src=dict(type="path"),
        owner=dict(type="int", default=0),
        group=dict(type="int", default=0),
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
        client = _lxd.connect(p)
        result = FileService(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

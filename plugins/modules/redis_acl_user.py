#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: redis_acl_user
short_description: A Redis ACL user confined to one key prefix
description:
  - Creates or updates an ACL user that can touch only the keys and Pub/Sub channels that
    start with O(key_prefix).
  - Pattern-blind and server-wide commands are denied - C(@dangerous) plus KEYS, SCAN,
    RANDOMKEY, FLUSHALL, FLUSHDB, CONFIG, ACL, SELECT, SWAPDB, MOVE, DBSIZE, PUBSUB,
    FUNCTION, FCALL and SCRIPT FLUSH/KILL.
  - The users are persisted with C(ACL SAVE), so they survive a Redis restart.
  - The password is set as its SHA-256 hash; the user's stored hashes are compared, so the
    same password again reports no change.
  - With O(state=absent) the user is removed (its connections are closed by Redis) and,
    with O(remove_keys=true), every key under its prefix is deleted.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options:
  name:
    description: The ACL user, e.g. C(p-myapp).
    type: str
    required: true
    aliases: [user]
  password:
    description:
      - The user's password. Required with O(state=present).
      - Used when the user is created; for an existing user only with O(rotate_password=true)
        or when the user has no password at all.
    type: str
  rotate_password:
    description: Replace the passwords of an existing user with O(password); a change only when they differ.
    type: bool
    default: false
  key_prefix:
    description:
      - The prefix of the user's keys and channels, ending in one C(:), e.g. C(myapp:).
        Defaults to O(name) followed by C(:).
    type: str
  remove_keys:
    description: With O(state=absent), delete every key under O(key_prefix) (SCAN as the admin).
    type: bool
    default: false
  state:
    description: Whether the user exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.redis
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Cache user of project myapp
  lxdctl.platform.redis_acl_user:
    name: p-myapp
    key_prefix: "myapp:"
    password: "{{ myapp_redis_password }}"
  no_log: true

- name: Remove it and its keys
  lxdctl.platform.redis_acl_user:
    name: p-myapp
    key_prefix: "myapp:"
    state: absent
    remove_keys: true
"""

RETURN = r"""
user:
  description: The ACL user.
  returned: always
  type: str
  sample: p-myapp
key_prefix:
  description: The user's key prefix.
  returned: always
  type: str
  sample: "myapp:"
host:
  description: The address tenants connect to (C(redis.tenant_host) of the platform configuration).
  returned: always
  type: str
  sample: 10.77.0.1
port:
  description: The server port.
  returned: always
  type: int
  sample: 6379
password_set:
  description: Whether the run set (or, in check mode, would set) the password.
  returned: always
  type: bool
keys_removed:
  description: How many keys were (or, in check mode, would be) deleted.
  returned: always
  type: int
commands:
  description: The Redis commands sent (or planned, in check mode), password hashes masked.
  returned: always
  type: list
  elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _redis, _service


def argument_spec():
    return _service.tenant_argument_spec(dict(
        name=dict(type=_redis.argspec_user_name, required=True, aliases=["user"]),
        key_prefix=dict(type=_redis.argspec_key_prefix, no_log=False),
        remove_keys=dict(type="bool", default=False, no_log=False),
    ), _redis.CONNECTION_ARGSPEC)


class AclUserService(_service.Service):
    def run(self):
        params = self.params
        name = params["name"]
        prefix = params["key_prefix"] or _redis.key_prefix(name + ":")
        info = self.client.get_user(name)
        before = _redis.state_view(name, info)
        planned = []
        password_set = False
        keys_removed = 0
        check = self.module.check_mode
        if params["state"] == "present":
            target = _redis.password_hash(params["password"])
            if info is None or params["rotate_password"]:
                hashes = [target]
            else:
                hashes = list(info.get("passwords") or []) or [target]  # never leave it without a password
            password_set = info is None or sorted(info.get("passwords") or []) != sorted(hashes)
            canonical = self.client.canonical_commands()
            after = dict(_redis.desired_view(name, prefix, "present", len(hashes)), commands=canonical)
            changed = info is None or not _redis.user_matches(info, prefix, hashes, canonical)
            if changed:
                rules = _redis.acl_rules(prefix, hashes)
                planned = [" ".join(["ACL SETUSER", name] + _redis.display_rules(rules)), "ACL SAVE"]
                if not check:
                    self.client.set_user(name, rules)
                    self.client.save_acl()
        else:
            after = {}
            changed = info is not None
            if changed:
                planned = ["ACL DELUSER %s" % name, "ACL SAVE"]
                if not check:
                    self.client.delete_user(name)
                    self.client.save_acl()
            if params["remove_keys"]:
                keys = self.client.scan_keys(prefix)
                keys_removed = len(keys)
                if keys:
                    changed = True
                    planned.append("UNLINK <%d keys>" % len(keys))
                    if not check:
                        self.client.delete_keys(keys)
        if password_set:
            after = dict(after, password="(changed)")
        return dict(
            changed=changed,
            user=name,
            key_prefix=prefix,
            host=self.client.tenant_host,
            port=self.client.port,
            password_set=bool(password_set and changed),
            keys_removed=keys_removed,
            commands=planned if check else self.client.commands,
            diff=dict(before=before, after=after),
        )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), required_if=_service.TENANT_REQUIRED_IF,
                           supports_check_mode=True)
    _service.run_service(module, _redis.Redis, AclUserService, validate=_service.validate_tenant)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  redis_host:
    description:
      - The Redis server the module connects to as the platform's admin.
      - Falls back to E(LXDCTL_REDIS_HOST), then to C(redis.host) of the platform
        configuration, then to C(127.0.0.1).
    type: str
  redis_port:
    description:
      - The server's TCP port.
      - Falls back to E(LXDCTL_REDIS_PORT), then to C(redis.port), then to C(6379).
    type: int
  redis_admin_user:
    description:
      - An ACL user allowed to run C(ACL) commands, C(SCAN) and C(UNLINK).
      - Falls back to E(LXDCTL_REDIS_ADMIN_USER), then to C(redis.admin_user).
    type: str
  redis_admin_password:
    description:
      - The admin user's password.
      - Falls back to E(LXDCTL_REDIS_ADMIN_PASSWORD), then to C(redis.admin_password).
    type: str
notes:
  - The platform configuration is C(/etc/lxdctl/platform.json), or the file E(LXDCTL_CONFIG) names.
requirements:
  - redis (redis-py)
"""

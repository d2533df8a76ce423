# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  mysql_host:
    description:
      - The MariaDB server the module connects to as the platform's admin.
      - Falls back to E(LXDCTL_MYSQL_HOST), then to C(mysql.host) of the platform
        configuration, then to C(127.0.0.1).
    type: str
  mysql_port:
    description:
      - The server's TCP port.
      - Falls back to E(LXDCTL_MYSQL_PORT), then to C(mysql.port), then to C(3306).
    type: int
  mysql_admin_user:
    description:
      - An account that may create users and databases and grant privileges.
      - Falls back to E(LXDCTL_MYSQL_ADMIN_USER), then to C(mysql.admin_user).
    type: str
  mysql_admin_password:
    description:
      - The admin account's password.
      - Falls back to E(LXDCTL_MYSQL_ADMIN_PASSWORD), then to C(mysql.admin_password).
    type: str
notes:
  - The platform configuration is C(/etc/lxdctl/platform.json), or the file E(LXDCTL_CONFIG) names.
requirements:
  - PyMySQL
"""

# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  postgres_host:
    description:
      - The PostgreSQL server the module connects to as the platform's admin.
      - Falls back to E(LXDCTL_POSTGRES_HOST), then to C(postgres.host) of the platform
        configuration, then to C(127.0.0.1).
    type: str
  postgres_port:
    description:
      - The server's TCP port.
      - Falls back to E(LXDCTL_POSTGRES_PORT), then to C(postgres.port), then to C(5432).
    type: int
  postgres_admin_user:
    description:
      - A role that may create roles and databases and read C(pg_authid) (a superuser).
      - Falls back to E(LXDCTL_POSTGRES_ADMIN_USER), then to C(postgres.admin_user).
    type: str
  postgres_admin_password:
    description:
      - The admin role's password.
      - Falls back to E(LXDCTL_POSTGRES_ADMIN_PASSWORD), then to C(postgres.admin_password).
    type: str
notes:
  - The platform configuration is C(/etc/lxdctl/platform.json), or the file E(LXDCTL_CONFIG) names.
requirements:
  - psycopg2
"""

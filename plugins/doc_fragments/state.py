# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  state_url:
    description:
      - Where the lxdctl state store is.
      - V(sqlite:////var/lib/lxdctl/state/state.db) (the default) names an SQLite file; it is created
        0600 in a 0700 directory when missing.
      - V(postgresql://user:password@host:5432/dbname) names a PostgreSQL database.
      - Falls back to E(LXDCTL_DATABASE_URL), then to C(state.url) of the platform configuration
        C(/etc/lxdctl/platform.json), then to the default.
      - Opening the store applies pending schema migrations.
    type: str
  state_key_file:
    description:
      - The AES-256-GCM key that encrypts secrets and env values at rest.
      - Created with a random key (mode 0600, directory 0700) the first time a value is encrypted.
      - Falls back to E(LXDCTL_STATE_KEY_FILE), then to C(state.key_file) of the platform
        configuration, then to C(/etc/lxdctl/state.key).
    type: path
    aliases: [key_file]
requirements:
  - cryptography (for encrypted values)
  - psycopg2 (for a PostgreSQL state store)
"""

# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  pdns_api_url:
    description:
      - Base URL of the PowerDNS authoritative server's HTTP API, without C(/api/v1).
      - Falls back to E(LXDCTL_PDNS_API_URL), then to C(pdns.api_url) of the platform
        configuration, then to C(http://127.0.0.1:8081).
    type: str
  pdns_api_key:
    description:
      - The API key (C(X-API-Key)).
      - Falls back to E(LXDCTL_PDNS_API_KEY), then to C(pdns.api_key) of the platform configuration.
    type: str
  pdns_server_id:
    description:
      - The PowerDNS server id in the API path.
      - Falls back to E(LXDCTL_PDNS_SERVER_ID), then to C(pdns.server_id) of the platform
        configuration, then to C(localhost).
    type: str
requirements:
  - requests
"""

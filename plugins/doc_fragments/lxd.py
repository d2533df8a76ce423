# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  lxd_url:
    description:
      - Where LXD listens. C(unix:///path/to/unix.socket) for the local daemon, or
        C(https://host:8443) for a remote one, which needs O(lxd_client_cert) and O(lxd_client_key).
      - Falls back to E(LXDCTL_LXD_URL), then to the platform configuration, then to the
        local socket C(/var/lib/lxd/unix.socket).
    type: str
  lxd_client_cert:
    description: Client certificate (PEM) for a remote LXD. Falls back to E(LXDCTL_LXD_CLIENT_CERT).
    type: path
  lxd_client_key:
    description: Private key (PEM) of O(lxd_client_cert). Falls back to E(LXDCTL_LXD_CLIENT_KEY).
    type: path
  lxd_verify:
    description:
      - Verify a remote LXD's TLS certificate. V(true), V(false), or a path to a CA bundle.
      - Falls back to E(LXDCTL_LXD_VERIFY).
    type: raw
requirements:
  - pylxd
"""

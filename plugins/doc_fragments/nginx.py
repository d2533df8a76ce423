# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  sites_dir:
    description:
      - The directory of lxdctl's site files, included in nginx's http context.
      - Falls back to E(LXDCTL_NGINX_SITES_DIR), then to C(nginx.sites_dir) of the platform
        configuration, then to C(/etc/nginx/lxdctl-sites).
    type: path
  nginx_binary:
    description:
      - The nginx executable used for C(nginx -t) and C(nginx -s reload).
      - Falls back to E(LXDCTL_NGINX_BINARY), then to C(nginx) on the PATH.
    type: path
"""

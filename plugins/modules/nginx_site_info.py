#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nginx_site_info
short_description: List the nginx sites lxdctl manages
description:
  - Lists the site files (C(<name>.conf)) in the platform's sites directory, each with the
    project name it belongs to when its name is a valid project name.
  - Reconcile uses it to find sites that no project in the state owns.
  - Never changes anything.
version_added: "0.1.0"
author: lxdctl maintainers
options: {}
extends_documentation_fragment:
  - lxdctl.platform.nginx
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: List the sites
  lxdctl.platform.nginx_site_info:
  register: _sites
"""

RETURN = r"""
sites:
  description: The sites, ordered by name.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The site name (the file name without C(.conf)).
      type: str
    path:
      description: The site file.
      type: str
    projects:
      description: The project the site belongs to (one name), or empty.
      type: list
      elements: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service, run_service
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _nginx


def argument_spec():
    spec = {}
    spec.update(_nginx.CONNECTION_ARGSPEC)
    return spec


class SiteInfo(Service):
    def run(self):
        sites = [dict(name=name, path="%s/%s.conf" % (self.client.sites_dir, name),
                      projects=_names.projects_named_by("site", name))
                 for name in _nginx.list_sites(self.client)]
        return dict(changed=False, sites=sites)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _nginx.Nginx, SiteInfo)


if __name__ == "__main__":
    main()

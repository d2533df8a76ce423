#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: nginx_site
short_description: An nginx server block from domains to weighted upstreams, with optional TLS
description:
  - Writes C(<sites_dir>/<name>.conf) with an upstream of one or more weighted servers (weights
    make canary releases) and a server block for O(server_names) that proxies to it.
  - Port 80 always serves C(/.well-known/acme-challenge/) from O(acme_webroot), so that
    M(lxdctl.platform.acme_certificate) can validate over HTTP-01.
  - With O(tls_certificate) and O(tls_certificate_key), an HTTPS server block is added, and
    with O(redirect_https) plain HTTP requests are redirected to it.
  - The file is written atomically (temp file and rename) and checked with C(nginx -t) before
    nginx is reloaded. If the check fails, the previous file is restored and the module
    fails with nginx's message.
  - nginx is reloaded with C(systemctl reload nginx) when systemd manages it, else with
    C(nginx -s reload) when its pid file shows it running. A stopped nginx is not started, and a site
    written while nginx is stopped is put back as it was and the module fails, since nothing
    would serve it (removing a site needs no running nginx).
  - A run killed after writing the file and before the reload leaves the mark
    C(<sites_dir>/.reload-pending); the next run then reloads even an unchanged site.
  - Every value is validated (domains, C(host:port) addresses, plain paths), so no newline,
    brace, semicolon or quote can reach the configuration.
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  name:
    description: The site name (a project name), also the file name.
    type: str
    required: true
  server_names:
    description: The domains the site answers for. Required when O(state=present).
    type: list
    elements: str
  upstreams:
    description: The backends. Required when O(state=present).
    type: list
    elements: dict
    suboptions:
      address:
        description: C(host:port); host is an IPv4 address, C([IPv6]) or a host name.
        type: str
        required: true
      weight:
        description: The relative share of requests, 1-1000.
        type: int
        default: 1
  tls_certificate:
    description: Path of the certificate chain (PEM) for HTTPS.
    type: path
  tls_certificate_key:
    description: Path of the certificate's private key (PEM).
    type: path
  redirect_https:
    description: Redirect plain HTTP (except ACME challenges) to HTTPS. Only with TLS.
    type: bool
    default: true
  acme_webroot:
    description:
      - The directory served under C(/.well-known/acme-challenge/) on port 80.
      - Defaults to C(nginx.acme_webroot) of the platform configuration, then C(/var/lib/lxdctl/acme-webroot).
    type: path
  http_port:
    description: The plain HTTP port. Defaults to C(nginx.http_port) of the platform configuration, then 80.
    type: int
  https_port:
    description: The HTTPS port. Defaults to C(nginx.https_port) of the platform configuration, then 443.
    type: int
  state:
    description: Whether the site exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.nginx
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Canary, 10% to the new release
  lxdctl.platform.nginx_site:
    name: myapp
    server_names: [myapp.apps.example.com]
    upstreams:
      - {address: "10.77.0.20:3000", weight: 9}
      - {address: "10.77.0.21:3000", weight: 1}
    tls_certificate: /etc/lxdctl/certs/myapp.crt
    tls_certificate_key: /etc/lxdctl/certs/myapp.key

- name: Remove the site
  lxdctl.platform.nginx_site:
    name: myapp
    state: absent
"""

RETURN = r"""
path:
  description: The site's file.
  returned: always
  type: str
  sample: /etc/nginx/lxdctl-sites/myapp.conf
config:
  description: The rendered configuration (empty when absent).
  returned: always
  type: str
reloaded:
  description: Whether nginx was reloaded.
  returned: always
  type: bool
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._nginx import (
    CONNECTION_ARGSPEC,
    Nginx,
    connection_params,
    render_site,
    validate_site,
)


def argument_spec():
    spec = dict(
        name=dict(type=_names.argspec_project_name, required=True),
        server_names=dict(type="list", elements=_names.argspec_domain),
        upstreams=dict(
            type="list",
            elements="dict",
            options=dict(address=dict(type="str", required=True), weight=dict(type="int", default=1)),
        ),
        tls_certificate=dict(type="path"),
        tls_certificate_key=dict(type="path", no_log=False),
        redirect_https=dict(type="bool", default=True),
        acme_webroot=dict(type="path"),
        http_port=dict(type="int"),
        https_port=dict(type="int"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )
    spec.update(CONNECTION_ARGSPEC)
    return spec


class SiteService(object):
    def __init__(self, module, nginx=None):
        self.module = module
        self.params = connection_params(module.params)
        self.nginx = nginx or Nginx(self.params)

    def run(self):
        site = validate_site(self.params)  # all validation before anything is read or written
        path = self.nginx.site_path(site["name"])
        before = self.nginx.read_site(site["name"])
        after = render_site(site) if site["state"] == "present" else None
        changed = before != after
        result = dict(
            changed=changed,
            path=path,
            config=after or "",
            reloaded=False,
            diff=dict(before=before or "", after=after or "", before_header=path, after_header=path),
        )
        if not self.module.check_mode and (changed or self.nginx.reload_pending()):
            # Unchanged but pending: a killed run wrote the file and never reloaded; finish that.
            result["reloaded"] = self.nginx.apply_site(site["name"], after)
            result["changed"] = True
        return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = SiteService(module).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: acme_certificate
short_description: Issue and renew a TLS certificate over ACME (HTTP-01 through nginx)
description:
  - A small ACME v2 (RFC 8555) client. It registers (or finds) the account of
    O(account_key_path), orders a certificate for O(domains), answers the HTTP-01
    challenges by writing the tokens into O(webroot) (which every
    M(lxdctl.platform.nginx_site) serves on port 80), and stores the chain and key.
  - The domains must resolve to this host and reach its nginx on port 80, through a site
    whose server_names include them.
  - Nothing is issued while the certificate at O(cert_path) matches the key, covers exactly
    O(domains) and is valid for more than O(renew_before_days), unless O(force).
  - Registering the account agrees to the ACME server's terms of service.
  - Works against any ACME directory, Let's Encrypt by default, or the platform's one (pebble in
    tests) when the platform configuration names it.
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  domains:
    description: The names of the certificate; the first is its common name.
    type: list
    elements: str
    required: true
  directory_url:
    description:
      - The ACME directory. Falls back to E(LXDCTL_ACME_DIRECTORY_URL), then to
        C(acme.directory_url) of the platform configuration, then to Let's Encrypt.
    type: str
  ca_bundle:
    description:
      - CA bundle to verify the ACME server's TLS certificate. Falls back to
        E(LXDCTL_ACME_CA_BUNDLE), then to C(acme.ca_bundle) of the platform configuration when
        O(directory_url) is the platform's directory, then to the system's trust store.
    type: path
  webroot:
    description: The HTTP-01 webroot. Defaults to C(nginx.acme_webroot) of the platform configuration.
    type: path
  cert_path:
    description: Where the certificate chain (PEM) goes. Defaults to C(<cert_dir>/<first domain>.crt).
    type: path
  key_path:
    description:
      - The certificate's private key (PEM, 0600). Defaults to C(<cert_dir>/<first domain>.key).
      - An existing key is reused; a missing one is generated (EC P-256).
    type: path
  account_key_path:
    description:
      - The ACME account key (PEM; EC P-256 signs with ES256, RSA with RS256). Generated when missing.
      - Defaults to C(<cert_dir>/acme-account.key).
    type: path
  email:
    description: Contact address of the ACME account.
    type: str
  renew_before_days:
    description: Renew when the certificate expires within this many days.
    type: int
    default: 30
  force:
    description: Issue a new certificate even when the current one is good.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for validation and issuance.
    type: int
    default: 180
  reload_nginx:
    description:
      - After a new certificate is written, check nginx's configuration and reload it (when
        nginx runs), so that the sites that use the certificate serve the new one.
    type: bool
    default: true
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
requirements:
  - cryptography
  - requests
"""

EXAMPLES = r"""
- name: A certificate for the project's domain
  lxdctl.platform.acme_certificate:
    domains: [myapp.apps.example.com]
    email: ops@example.com
  register: cert

- name: Serve it
  lxdctl.platform.nginx_site:
    name: myapp
    server_names: [myapp.apps.example.com]
    upstreams: [{address: "10.77.0.20:3000"}]
    tls_certificate: "{{ cert.cert_path }}"
    tls_certificate_key: "{{ cert.key_path }}"
"""

RETURN = r"""
cert_path:
  description: The certificate chain file.
  returned: always
  type: str
key_path:
  description: The private key file.
  returned: always
  type: str
domains:
  description: The certificate's names (sorted), empty when there is none yet.
  returned: always
  type: list
  elements: str
not_after:
  description: Expiry of the certificate (UTC, ISO 8601); empty when there is none yet.
  returned: always
  type: str
  sample: "2026-03-01T10:00:00Z"
serial:
  description: Serial number in hex.
  returned: always
  type: str
issuer:
  description: The issuer's distinguished name.
  returned: always
  type: str
reason:
  description: Why a certificate was (or in check mode would be) issued; empty when unchanged.
  returned: always
  type: str
reloaded:
  description: Whether nginx was reloaded after a new certificate was written.
  returned: always
  type: bool
"""

import os

from ansible.module_utils.basic import AnsibleModule, env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils import _acme, _names, _nginx, _platform_config

DEFAULT_CERT_DIR = "/etc/lxdctl/certs"
DEFAULT_WEBROOT = "/var/lib/lxdctl/acme-webroot"


def argument_spec():
    return dict(
        domains=dict(type="list", elements=_names.argspec_domain, required=True),
        directory_url=dict(type="str", fallback=(env_fallback, ["LXDCTL_ACME_DIRECTORY_URL"])),
        ca_bundle=dict(type="path", fallback=(env_fallback, ["LXDCTL_ACME_CA_BUNDLE"])),
        webroot=dict(type="path"),
        cert_path=dict(type="path"),
        key_path=dict(type="path", no_log=False),
        account_key_path=dict(type="path", no_log=False),
        email=dict(type="str"),
        renew_before_days=dict(type="int", default=30),
        force=dict(type="bool", default=False),
        timeout=dict(type="int", default=180),
        reload_nginx=dict(type="bool", default=True),
    )


def resolve_settings(params, config=None):
    """Module parameters filled from the platform configuration's ``acme`` and ``nginx`` sections."""
    config = _platform_config.load() if config is None else config
    acme = config.get("acme") or {}
    nginx = config.get("nginx") or {}
    domains = []
    for name in params["domains"]:
        if name not in domains:
            domains.append(name)
    if not domains:
        raise ValidationError("domains", "at least one domain is needed")
    if params.get("email") is not None:
        _names.safe_text(params["email"], "email")
        if "@" not in params["email"] or " " in params["email"]:
            raise ValidationError("email", "must be an e-mail address", params["email"])
    if params["renew_before_days"] < 0:
        raise ValidationError("renew_before_days", "must not be negative", params["renew_before_days"])
    directory_url = params.get("directory_url") or acme.get("directory_url") or _acme.LETSENCRYPT_DIRECTORY
    if not directory_url.startswith("https://"):
        raise ValidationError("directory_url", "must be an https:// URL", directory_url)
    ca_bundle = params.get("ca_bundle")
    if not ca_bundle and acme.get("ca_bundle") and directory_url == acme.get("directory_url"):
        ca_bundle = acme["ca_bundle"]
    cert_dir = nginx.get("cert_dir") or DEFAULT_CERT_DIR
    return dict(
        domains=domains,
        directory_url=directory_url,
        verify=ca_bundle or True,
        webroot=params.get("webroot") or nginx.get("acme_webroot") or DEFAULT_WEBROOT,
        cert_path=params.get("cert_path") or os.path.join(cert_dir, domains[0] + ".crt"),
        key_path=params.get("key_path") or os.path.join(cert_dir, domains[0] + ".key"),
        account_key_path=params.get("account_key_path") or os.path.join(cert_dir, "acme-account.key"),
        email=params.get("email"),
        renew_before_days=params["renew_before_days"],
        force=params["force"],
        timeout=params["timeout"],
        reload_nginx=params.get("reload_nginx", True),
    )


class CertificateService(object):
    def __init__(self, module, settings):
        self.module = module
        self.s = settings

    def _result(self, changed, reason, cert):
        info = _acme.cert_info(cert) if cert is not None else {"domains": [], "not_after": "", "serial": "", "issuer": ""}
        result = dict(changed=changed, reason=reason or "", cert_path=self.s["cert_path"], key_path=self.s["key_path"],
                      reloaded=False)
        result.update(info)
        return result

    def _nginx(self):
        """The platform's nginx when this certificate is served by it (reload_nginx), else None."""
        if not self.s["reload_nginx"]:
            return None
        nginx = _nginx.Nginx({"sites_dir": None, "nginx_binary": None})
        return nginx if os.path.isdir(nginx.sites_dir) else None

    def run(self):
        _acme.require_deps()
        s = self.s
        before = _acme.load_cert(s["cert_path"])
        reason = _acme.renewal_reason(s["cert_path"], s["key_path"], s["domains"], s["renew_before_days"], s["force"])
        if reason is None:
            result = self._result(False, None, before)
            nginx = self._nginx()
            if nginx is not None and nginx.reload_pending() and not self.module.check_mode:
                # A run killed after writing a certificate and before the reload: finish it.
                result["reloaded"] = nginx.check_and_reload()
                result["changed"] = True
            return result
        before_view = _acme.cert_info(before) if before is not None else {}
        after_view = {"domains": sorted(set(s["domains"])), "not_after": "(new certificate)", "serial": "(new)"}
        if self.module.check_mode:
            result = self._result(True, reason, before)
            result["diff"] = dict(before=before_view, after=after_view)
            return result
        if not os.path.isdir(s["webroot"]):
            raise LxdctlError("The ACME webroot %s does not exist: run `lxdctl init` first" % s["webroot"])
        account_key, _ = _acme.load_or_create_key(s["account_key_path"], create=True)
        cert_key, key_created = _acme.load_or_create_key(s["key_path"], create=False)
        client = _acme.AcmeClient(s["directory_url"], account_key, verify=s["verify"], poll_timeout=s["timeout"])
        chain = client.issue(s["domains"], cert_key, s["webroot"], s["email"])
        nginx = self._nginx()
        if nginx is not None:
            nginx.mark_pending()
        if key_created:
            _acme.write_file(s["key_path"], _acme.key_to_pem(cert_key), 0o600)
        _acme.write_file(s["cert_path"], chain, 0o644)
        cert = _acme.load_cert(s["cert_path"])
        result = self._result(True, reason, cert)
        if nginx is not None:
            result["reloaded"] = nginx.check_and_reload()
        after_view = {k: result[k] for k in ("domains", "not_after", "serial")}
        result["diff"] = dict(before=before_view, after=after_view)
        return result


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        settings = resolve_settings(module.params)
        result = CertificateService(module, settings).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

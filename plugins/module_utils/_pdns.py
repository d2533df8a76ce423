# -*- coding: utf-8 -*-
"""The PowerDNS HTTP API client wrapper (requests).  powerdns_zone and powerdns_record use it.

Zones and rrsets are addressed by their canonical names (lower case, trailing dot), which
``_names.zone_name`` produces, so a zone id is always the zone name itself.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import time

from ansible.module_utils.basic import env_fallback

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils import _platform_config

try:
    import requests

    HAS_REQUESTS = True
    REQUESTS_IMPORT_ERROR = None
except ImportError as exc:  # reported by PowerDNS() as a readable failure
    HAS_REQUESTS = False
    REQUESTS_IMPORT_ERROR = exc

DEFAULT_API_URL = "http://127.0.0.1:8081"
DEFAULT_SERVER_ID = "localhost"
ZONE_KINDS = ("Native", "Master")
LOCKED_RETRIES = 8

# Connection options, written once; the doc fragment lxdctl.platform.pdns documents them.
CONNECTION_ARGSPEC = dict(
    pdns_api_url=dict(type="str", fallback=(env_fallback, ["LXDCTL_PDNS_API_URL"])),
    pdns_api_key=dict(type="str", no_log=True, fallback=(env_fallback, ["LXDCTL_PDNS_API_KEY"])),
    pdns_server_id=dict(type="str", fallback=(env_fallback, ["LXDCTL_PDNS_SERVER_ID"])),
)

_CONFIG_KEYS = {"pdns_api_url": "api_url", "pdns_api_key": "api_key", "pdns_server_id": "server_id"}


def connection_params(params):
    """Parameter -> environment (argspec fallback) -> platform.json section ``pdns`` -> default."""
    resolved = _platform_config.resolve(params, "pdns", _CONFIG_KEYS)
    resolved["pdns_api_url"] = (resolved.get("pdns_api_url") or DEFAULT_API_URL).rstrip("/")
    resolved["pdns_server_id"] = resolved.get("pdns_server_id") or DEFAULT_SERVER_ID
    if not resolved.get("pdns_api_key"):
        raise LxdctlError(
            "pdns_api_key is not set: pass it, set LXDCTL_PDNS_API_KEY, or run `lxdctl init` "
            "so that /etc/lxdctl/platform.json has it"
        )
    if not resolved["pdns_api_url"].startswith(("http://", "https://")):
        raise LxdctlError("pdns_api_url: must start with http:// or https://, got %r" % resolved["pdns_api_url"])
    return resolved


class PowerDNS(object):
    """A small client for the PowerDNS authoritative server's API (v1)."""

    def __init__(self, params, timeout=15):
        if not HAS_REQUESTS:
            raise LxdctlError("The requests Python library is required on the managed host: %s" % REQUESTS_IMPORT_ERROR)
        conn = connection_params(params)
        self.base = "%s/api/v1/servers/%s" % (conn["pdns_api_url"], conn["pdns_server_id"])
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"X-API-Key": conn["pdns_api_key"], "Accept": "application/json"})

    def _request(self, context, method, path, body=None, missing_ok=False):
        url = self.base + path
        for attempt in range(LOCKED_RETRIES + 1):
            try:
                resp = self.session.request(method, url, json=body, timeout=self.timeout)
            except requests.RequestException as exc:
                raise LxdctlError("%s: cannot reach the PowerDNS API at %s: %s" % (context, self.base, exc))
            if not _locked(method, resp) or attempt == LOCKED_RETRIES:
                break
            time.sleep(min(2.0, 0.05 * 2 ** attempt))
        if missing_ok and resp.status_code == 404:
            return None
        if missing_ok and resp.status_code == 422 and "could not find" in resp.text.lower():
            return None
        if resp.status_code >= 400:
            raise LxdctlError("%s: PowerDNS answered %d: %s" % (context, resp.status_code, _api_error(resp)))
        if resp.status_code == 204 or not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            return {}

    # --- zones -----------------------------------------------------------------------
    def get_zone(self, zone):
        """The zone (with rrsets) or ``None``; ``zone`` is canonical (trailing dot)."""
        return self._request("Failed to get zone %s" % zone, "GET", "/zones/%s" % zone, missing_ok=True)

    def create_zone(self, zone, kind, nameservers):
        body = {"name": zone, "kind": kind, "nameservers": list(nameservers or [])}
        return self._request("Failed to create zone %s" % zone, "POST", "/zones", body)

    def set_zone_kind(self, zone, kind):
        return self._request("Failed to change the kind of zone %s" % zone, "PUT", "/zones/%s" % zone, {"kind": kind})

    def delete_zone(self, zone):
        return self._request("Failed to delete zone %s" % zone, "DELETE", "/zones/%s" % zone)

    # --- rrsets ----------------------------------------------------------------------
    def replace_rrset(self, zone, name, rtype, ttl, contents):
        rrset = {
            "name": name,
            "type": rtype,
            "ttl": int(ttl),
            "changetype": "REPLACE",
            "records": [{"content": content, "disabled": False} for content in contents],
        }
        return self._request(
            "Failed to set %s %s in zone %s" % (rtype, name, zone), "PATCH", "/zones/%s" % zone, {"rrsets": [rrset]}
        )

    def delete_rrset(self, zone, name, rtype):
        rrset = {"name": name, "type": rtype, "changetype": "DELETE"}
        return self._request(
            "Failed to delete %s %s in zone %s" % (rtype, name, zone), "PATCH", "/zones/%s" % zone, {"rrsets": [rrset]}
        )


def find_rrset(zone_data, name, rtype):
    """The rrset ``name``/``rtype`` of a zone as ``{"ttl", "records"}`` (sorted), or ``None``."""
    for rrset in (zone_data or {}).get("rrsets") or []:
        if rrset.get("name", "").lower() == name and rrset.get("type") == rtype:
            records = sorted(r["content"] for r in rrset.get("records") or [] if not r.get("disabled"))
            if not records:
                return None
            return {"ttl": rrset.get("ttl"), "records": records}
    return None


# Calls that set a whole state (a zone's rrsets by REPLACE or DELETE, a read): safe to repeat.
_REPEATABLE = ("GET", "PUT", "PATCH", "DELETE")


def _locked(method, resp):
    """The sqlite3 backend is locked by another API call that writes (parallel creates and deletes).

    It answers 500 with "database is locked", or, when the lock hits while it reads results,
    a bare "Internal Server Error" (its log: "HTTP ISE ... Exception: GSQLBackend unable to delete
    RRSet ...: database is locked").  Nothing was changed, so a repeatable call is tried again."""
    if resp.status_code != 500:
        return False
    if "database is locked" in resp.text:
        return True
    return method in _REPEATABLE and _api_error(resp) == "Internal Server Error"


def _api_error(resp):
    try:
        data = resp.json()
    except ValueError:
        return resp.text.strip()[:300] or resp.reason
    return data.get("error") or data.get("errors") or resp.reason

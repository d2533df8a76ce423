"""/api/dns: records (``lxdctl dns add``) and the managed zones."""
from lxdctl.api import cli_bridge, db
from lxdctl.api.routes_common import accepted, only_fields, require_project, text_field
from lxdctl.api.server import ApiError


def add_record(req):
    """Add a record: ``{"fqdn", "type", "content", "ttl", "priority", "project"}``."""
    body = only_fields(req, ("fqdn", "type", "content", "ttl", "priority", "project"))
    req.require("fqdn", "type", "content")
    if req.project:
        require_project(req, req.project)
    options = dict((k, text_field(body, k)) for k in ("type", "content", "ttl", "priority"))
    options["project"] = req.project
    return accepted(req, cli_bridge.argv_for(["dns", "add"], [text_field(body, "fqdn")], options), req.project)


def zones(req):
    """The zones this platform manages."""
    config = db.module_utils_config()
    return {"zones": [z.rstrip(".") for z in (config.get("dns") or {}).get("managed_zones") or []]}


def project_records(req):
    """A project's DNS records."""
    require_project(req, req.project)
    return {"records": req.store.list_dns_records(req.project)}


def register(router):
    router.add("POST", "/api/dns/records", add_record, "write", "body:project",
               body={"fqdn": "the name", "type": "A, AAAA, CNAME, MX or TXT", "content": "the value",
                     "ttl": "seconds", "priority": "MX preference", "project": "the owning project"})
    router.add("GET", "/api/dns/zones", zones, "read")
    router.add("GET", "/api/projects/:id/dns", project_records, "read", "id")

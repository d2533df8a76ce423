"""Unit tests of powerdns_zone, powerdns_record, nginx_site and acme_certificate (no services)."""
import datetime
import os

import pytest
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.x509.oid import NameOID

from ansible_collections.lxdctl.platform.plugins.module_utils import _acme, _nginx, _pdns
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.modules import acme_certificate, nginx_site, powerdns_record, powerdns_zone


class FakeModule(object):
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)


def validate(spec, params):
    """Real Ansible argument validation; returns (errors as text, validated params)."""
    result = ArgumentSpecValidator(spec).validate(params)
    return " ".join(str(e) for e in result.errors), result.validated_parameters


# --- argument validation --------------------------------------------------------------
LONG_LABEL = "a" * 64 + ".example.com"
LONG_DOMAIN = ".".join(["a" * 60] * 5)  # 304 characters


@pytest.mark.parametrize(
    "zone, fragment",
    [(LONG_LABEL, "longer than 63"), (LONG_DOMAIN, "at most 253"), ("exa;mple.com", "DNS name"),
     ("example.com\nevil", "DNS name"), ("ex{a}.com", "DNS name"), ("../etc", "DNS name")],
)
def test_zone_argspec_rejects_bad_names(zone, fragment):
    errors, _ = validate(powerdns_zone.argument_spec(), {"name": zone, "pdns_api_key": "k"})
    assert fragment in errors


def test_zone_argspec_canonicalizes():
    errors, params = validate(powerdns_zone.argument_spec(), {"name": "Apps.Example.COM", "nameservers": ["ns1.example.com."]})
    assert not errors
    assert params["name"] == "apps.example.com."
    assert params["nameservers"] == ["ns1.example.com"]
    assert params["kind"] == "Native"


def test_zone_argspec_rejects_unknown_kind():
    errors, _ = validate(powerdns_zone.argument_spec(), {"name": "example.com", "kind": "Slave"})
    assert "kind" in errors


def test_pdns_api_key_is_no_log():
    assert powerdns_zone.argument_spec()["pdns_api_key"]["no_log"] is True
    assert powerdns_record.argument_spec()["pdns_api_key"]["no_log"] is True


def test_pdns_connection_from_platform_config(tmp_path, monkeypatch):
    config = tmp_path / "platform.json"
    config.write_text('{"pdns": {"api_url": "http://127.0.0.1:9999/", "api_key": "sekrit", "server_id": "srv"}}')
    monkeypatch.setenv("LXDCTL_CONFIG", str(config))
    conn = _pdns.connection_params({"pdns_api_url": None, "pdns_api_key": None, "pdns_server_id": None})
    assert conn == {"pdns_api_url": "http://127.0.0.1:9999", "pdns_api_key": "sekrit", "pdns_server_id": "srv"}
    conn = _pdns.connection_params({"pdns_api_url": "http://10.77.0.1:8081", "pdns_api_key": "mine", "pdns_server_id": None})
    assert conn["pdns_api_url"] == "http://10.77.0.1:8081" and conn["pdns_api_key"] == "mine"


def test_pdns_connection_needs_a_key(tmp_path, monkeypatch):
    monkeypatch.setenv("LXDCTL_CONFIG", str(tmp_path / "missing.json"))
    with pytest.raises(LxdctlError, match="pdns_api_key"):
        _pdns.connection_params({"pdns_api_url": None, "pdns_api_key": None, "pdns_server_id": None})


def record_params(**overrides):
    params = {"zone": "example.com.", "name": "www", "type": "A", "records": ["10.0.0.1"], "ttl": 3600,
              "priority": None, "state": "present"}
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, {"name": "www.example.com.", "type": "A", "ttl": 3600, "records": ["10.0.0.1"]}),
        ({"name": "@"}, {"name": "example.com.", "type": "A", "ttl": 3600, "records": ["10.0.0.1"]}),
        ({"name": "WWW.example.com."}, {"name": "www.example.com.", "type": "A", "ttl": 3600, "records": ["10.0.0.1"]}),
        ({"type": "AAAA", "records": ["2001:DB8:0::1"], "ttl": 60},
         {"name": "www.example.com.", "type": "AAAA", "ttl": 60, "records": ["2001:db8::1"]}),
        ({"type": "CNAME", "records": ["Target.example.net"]},
         {"name": "www.example.com.", "type": "CNAME", "ttl": 3600, "records": ["target.example.net."]}),
        ({"type": "MX", "name": "@", "priority": 20, "records": ["mx2.example.com", "mx1.example.com"]},
         {"name": "example.com.", "type": "MX", "ttl": 3600, "records": ["20 mx1.example.com.", "20 mx2.example.com."]}),
        ({"type": "MX", "name": "@", "records": ["5 mx1.example.com", "mx2.example.com"]},
         {"name": "example.com.", "type": "MX", "ttl": 3600, "records": ["10 mx2.example.com.", "5 mx1.example.com."]}),
        ({"type": "TXT", "records": ["v=spf1 -all"]},
         {"name": "www.example.com.", "type": "TXT", "ttl": 3600, "records": ['"v=spf1 -all"']}),
    ],
)
def test_desired_rrset_canonical(overrides, expected):
    assert powerdns_record.desired_rrset(record_params(**overrides)) == expected


def test_desired_rrset_order_and_duplicates_do_not_matter():
    one = powerdns_record.desired_rrset(record_params(records=["10.0.0.2", "10.0.0.1"]))
    two = powerdns_record.desired_rrset(record_params(records=["10.0.0.1", "10.0.0.2", "10.0.0.1"]))
    assert one == two


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"type": "TXT", "records": ["hello\nwww IN A 6.6.6.6"]}, "newlines"),
        ({"type": "TXT", "records": ["a;b"]}, "semicolons"),
        ({"type": "TXT", "records": ["a{b}"]}, "braces"),
        ({"type": "TXT", "records": ['a" "b']}, "quotes"),
        ({"type": "CNAME", "records": ["evil.com.;rm"]}, "DNS name"),
        ({"type": "CNAME", "records": ["a.example.com", "b.example.com"]}, "exactly one"),
        ({"type": "MX", "records": ["mx.example.com}"]}, "DNS name"),
        ({"type": "A", "records": ["10.0.0.1\n"]}, "newlines"),
        ({"type": "A", "records": ["10.0.0.1; evil"]}, "IPv4"),
        ({"type": "AAAA", "records": ["10.0.0.1"]}, "IPv6"),
        ({"records": []}, "at least one"),
        ({"priority": 5}, "only applies to MX"),
        ({"type": "MX", "priority": 70000, "records": ["mx.example.com"]}, "65535"),
        ({"ttl": 0}, "ttl"),
        ({"name": "www\nevil"}, "host name"),
        ({"name": "a;b"}, "host name"),
        ({"name": "x{"}, "host name"),
        ({"name": "a" * 64}, "longer than 63"),
        ({"name": ".".join(["a" * 60] * 4)}, "at most 253"),
    ],
)
def test_desired_rrset_rejects(overrides, fragment):
    with pytest.raises(ValidationError, match=fragment):
        powerdns_record.desired_rrset(record_params(**overrides))


def test_record_argspec_rejects_bad_type_and_zone():
    errors, _ = validate(powerdns_record.argument_spec(), {"zone": "example.com", "type": "SRV", "records": ["x"]})
    assert "type" in errors
    errors, _ = validate(powerdns_record.argument_spec(), {"zone": LONG_LABEL, "type": "A", "records": ["10.0.0.1"]})
    assert "longer than 63" in errors


# --- PowerDNS services against a fake client: diff computation ------------------------
class FakePdns(object):
    def __init__(self, zones=None):
        self.zones = zones or {}
        self.calls = []

    def get_zone(self, zone):
        return self.zones.get(zone)

    def create_zone(self, zone, kind, nameservers):
        self.calls.append(("create", zone, kind, list(nameservers)))
        rrsets = [{"name": zone, "type": "NS", "ttl": 3600, "records": [{"content": n} for n in nameservers]}] if nameservers else []
        self.zones[zone] = {"name": zone, "kind": kind, "rrsets": rrsets}

    def set_zone_kind(self, zone, kind):
        self.calls.append(("kind", zone, kind))
        self.zones[zone]["kind"] = kind

    def delete_zone(self, zone):
        self.calls.append(("delete", zone))
        del self.zones[zone]

    def replace_rrset(self, zone, name, rtype, ttl, contents):
        self.calls.append(("replace", name, rtype, ttl, list(contents)))
        rrsets = [r for r in self.zones[zone]["rrsets"] if (r["name"], r["type"]) != (name, rtype)]
        rrsets.append({"name": name, "type": rtype, "ttl": ttl, "records": [{"content": c, "disabled": False} for c in contents]})
        self.zones[zone]["rrsets"] = rrsets

    def delete_rrset(self, zone, name, rtype):
        self.calls.append(("delete_rrset", name, rtype))
        self.zones[zone]["rrsets"] = [r for r in self.zones[zone]["rrsets"] if (r["name"], r["type"]) != (name, rtype)]


def zone_params(**overrides):
    params = {"name": "example.com.", "kind": "Native", "nameservers": None, "state": "present"}
    params.update(overrides)
    return params


def test_zone_create_then_unchanged_then_modify_then_absent():
    client = FakePdns()
    check = powerdns_zone.ZoneService(FakeModule(zone_params(nameservers=["ns1.example.com"]), True), client).run()
    assert check["changed"] and client.calls == []
    assert check["diff"] == {"before": {}, "after": {"name": "example.com.", "kind": "Native", "nameservers": ["ns1.example.com."]}}
    res = powerdns_zone.ZoneService(FakeModule(zone_params(nameservers=["ns1.example.com"])), client).run()
    assert res["changed"] and client.calls == [("create", "example.com.", "Native", ["ns1.example.com."])]
    again = powerdns_zone.ZoneService(FakeModule(zone_params(nameservers=["ns1.example.com"])), client).run()
    assert not again["changed"]
    untouched_ns = powerdns_zone.ZoneService(FakeModule(zone_params()), client).run()
    assert not untouched_ns["changed"]
    mod = powerdns_zone.ZoneService(FakeModule(zone_params(kind="Master", nameservers=["ns2.example.com", "ns1.example.com"])), client).run()
    assert mod["changed"]
    assert mod["diff"]["before"]["kind"] == "Native" and mod["diff"]["after"]["kind"] == "Master"
    assert client.calls[-2:] == [("kind", "example.com.", "Master"),
                                 ("replace", "example.com.", "NS", 3600, ["ns1.example.com.", "ns2.example.com."])]
    gone = powerdns_zone.ZoneService(FakeModule(zone_params(state="absent")), client).run()
    assert gone["changed"] and "example.com." not in client.zones
    again = powerdns_zone.ZoneService(FakeModule(zone_params(state="absent")), client).run()
    assert not again["changed"]


def run_record(client, check=False, **overrides):
    params = record_params(**overrides)
    return powerdns_record.RecordService(FakeModule(params, check), lambda p: client).run()


def test_record_lifecycle_and_diff():
    client = FakePdns({"example.com.": {"name": "example.com.", "kind": "Native", "rrsets": []}})
    check = run_record(client, check=True, records=["10.0.0.2", "10.0.0.1"])
    assert check["changed"] and client.calls == []
    assert check["diff"]["before"] == {}
    assert check["diff"]["after"]["records"] == ["10.0.0.1", "10.0.0.2"]
    assert run_record(client, records=["10.0.0.2", "10.0.0.1"])["changed"]
    assert len(client.calls) == 1
    same = run_record(client, records=["10.0.0.1", "10.0.0.2"])
    assert not same["changed"] and len(client.calls) == 1
    ttl = run_record(client, records=["10.0.0.1", "10.0.0.2"], ttl=60)
    assert ttl["changed"] and ttl["diff"]["before"]["ttl"] == 3600 and ttl["diff"]["after"]["ttl"] == 60
    gone = run_record(client, state="absent", records=None)
    assert gone["changed"] and gone["diff"]["after"] == {}
    assert not run_record(client, state="absent", records=None)["changed"]


def test_record_needs_existing_zone_but_absent_is_fine():
    client = FakePdns()
    with pytest.raises(LxdctlError, match="does not exist"):
        run_record(client)
    assert not run_record(client, state="absent")["changed"]


def test_record_check_mode_in_a_zone_still_to_be_created():
    module = FakeModule(record_params(), check_mode=True)
    res = powerdns_record.RecordService(module, lambda p: FakePdns()).run()
    assert res["changed"] and res["diff"]["before"] == {} and "does not exist" in module.warnings[0]


def test_record_bad_input_sends_nothing():
    def factory(params):
        raise AssertionError("no client may be built for bad input")

    module = FakeModule(record_params(type="TXT", records=["x\ny"]))
    with pytest.raises(ValidationError):
        powerdns_record.RecordService(module, factory).run()


# --- nginx ----------------------------------------------------------------------------
def site_params(**overrides):
    params = {
        "name": "myapp", "server_names": ["myapp.example.com", "www.myapp.example.com"],
        "upstreams": [{"address": "127.0.0.1:8001", "weight": 9}, {"address": "10.77.0.5:3000", "weight": 1}],
        "tls_certificate": None, "tls_certificate_key": None, "redirect_https": True,
        "acme_webroot": "/var/lib/lxdctl/acme-webroot", "http_port": 80, "https_port": 443, "state": "present",
        "sites_dir": "/nonexistent", "nginx_binary": "nginx",
    }
    params.update(overrides)
    return params


def test_render_plain_site():
    text = _nginx.render_site(_nginx.validate_site(site_params()))
    assert "upstream lxdctl_myapp {" in text
    assert "    server 127.0.0.1:8001 weight=9;" in text
    assert "    server 10.77.0.5:3000 weight=1;" in text
    assert "server_name myapp.example.com www.myapp.example.com;" in text
    assert "location ^~ /.well-known/acme-challenge/ {" in text
    assert "root /var/lib/lxdctl/acme-webroot;" in text
    assert "proxy_pass http://lxdctl_myapp;" in text
    assert "ssl" not in text and "return 301" not in text
    assert text.count("{") == text.count("}")


def test_render_tls_site_with_redirect():
    site = _nginx.validate_site(site_params(tls_certificate="/etc/lxdctl/certs/a.crt", tls_certificate_key="/etc/lxdctl/certs/a.key"))
    text = _nginx.render_site(site)
    http, https = text.split("\nserver {")[1:]
    assert "listen 80;" in http and "return 301 https://$host$request_uri;" in http
    assert "acme-challenge" in http and "proxy_pass" not in http
    assert "listen 443 ssl;" in https and "ssl_certificate /etc/lxdctl/certs/a.crt;" in https
    assert "ssl_certificate_key /etc/lxdctl/certs/a.key;" in https and "proxy_pass http://lxdctl_myapp;" in https


def test_render_tls_without_redirect_and_custom_ports():
    site = _nginx.validate_site(site_params(tls_certificate="/c.pem", tls_certificate_key="/k.pem", redirect_https=False,
                                            http_port=8080, https_port=8443))
    text = _nginx.render_site(site)
    assert "listen 8080;" in text and "listen 8443 ssl;" in text
    assert "return 301" not in text and text.count("proxy_pass") == 2


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"server_names": ["a.example.com;\n}"]}, "DNS name"),
        ({"server_names": ["a.example.com { return 200; }"]}, "DNS name"),
        ({"server_names": [LONG_LABEL]}, "longer than 63"),
        ({"server_names": [LONG_DOMAIN]}, "at most 253"),
        ({"server_names": []}, "at least one domain"),
        ({"upstreams": [{"address": "127.0.0.1:80; include /etc/passwd", "weight": 1}]}, "upstreams"),
        ({"upstreams": [{"address": "127.0.0.1:80\n}", "weight": 1}]}, "upstreams"),
        ({"upstreams": [{"address": "a{b}:80", "weight": 1}]}, "upstreams"),
        ({"upstreams": [{"address": "127.0.0.1", "weight": 1}]}, "host:port"),
        ({"upstreams": [{"address": "127.0.0.1:99999", "weight": 1}]}, "65535"),
        ({"upstreams": [{"address": "127.0.0.1:80", "weight": 0}]}, "1 to 1000"),
        ({"upstreams": [{"address": "127.0.0.1:80", "weight": 1001}]}, "1 to 1000"),
        ({"upstreams": [{"address": "127.0.0.1:80"}, {"address": "127.0.0.1:80"}]}, "only once"),
        ({"upstreams": []}, "at least one upstream"),
        ({"tls_certificate": "/a.crt;", "tls_certificate_key": "/a.key"}, "tls_certificate"),
        ({"tls_certificate": "/a b.crt", "tls_certificate_key": "/a.key"}, "tls_certificate"),
        ({"tls_certificate": "relative.crt", "tls_certificate_key": "/a.key"}, "absolute"),
        ({"tls_certificate": "/a.crt", "tls_certificate_key": None}, "go together"),
        ({"acme_webroot": "/srv/x}\n"}, "acme_webroot"),
        ({"name": "My Site"}, "name"),
        ({"name": "a/../../etc"}, "name"),
        ({"name": "x" * 40}, "name"),
    ],
)
def test_validate_site_rejects(overrides, fragment):
    with pytest.raises(ValidationError, match=fragment):
        _nginx.validate_site(site_params(**overrides))


def test_upstream_address_forms():
    assert _nginx.upstream_address("LOCALHOST:8000") == "localhost:8000"
    assert _nginx.upstream_address("[2001:db8::1]:80") == "[2001:db8::1]:80"
    assert _nginx.upstream_address("10.77.0.9:3000") == "10.77.0.9:3000"


def test_site_argspec_rejects_bad_names():
    errors, _ = validate(nginx_site.argument_spec(), {"name": "Bad;Name", "server_names": ["a.example.com"]})
    assert "name" in errors
    errors, _ = validate(nginx_site.argument_spec(), {"name": "ok", "server_names": ["a.exa\nmple.com"]})
    assert "server_names" in errors
    errors, params = validate(nginx_site.argument_spec(), {"name": "ok", "upstreams": [{"address": "127.0.0.1:80"}]})
    assert not errors and params["upstreams"] == [{"address": "127.0.0.1:80", "weight": 1}]


@pytest.fixture(autouse=True)
def no_real_nginx_workers(monkeypatch):
    """No nginx runs in unit tests: a reload's wait for new workers of the fake master ends at once."""
    monkeypatch.setattr(_nginx, "wait_for_new_workers", lambda master, old_workers, **kwargs: True)


class FakeRunner(object):
    def __init__(self, test_ok=True, message="nginx: configuration file /etc/nginx/nginx.conf test failed"):
        self.test_ok = test_ok
        self.message = message
        self.calls = []

    def __call__(self, cmd):
        self.calls.append(cmd)
        if cmd[-1] == "-t":
            return (0, "", "syntax is ok") if self.test_ok else (1, "", self.message)
        if cmd[:2] == ["systemctl", "is-active"]:
            return 3, "", ""
        return 0, "", ""


def make_site_service(tmp_path, runner, check=False, **overrides):
    params = site_params(sites_dir=str(tmp_path), **overrides)
    module = FakeModule(params, check)
    nginx = _nginx.Nginx(params, run_command=runner)
    nginx.master_pid = lambda: 1234
    return nginx_site.SiteService(module, nginx)


def test_site_check_mode_writes_nothing(tmp_path):
    runner = FakeRunner()
    res = make_site_service(tmp_path, runner, check=True).run()
    assert res["changed"] and res["diff"]["before"] == "" and "upstream lxdctl_myapp" in res["diff"]["after"]
    assert os.listdir(str(tmp_path)) == [] and runner.calls == []


def test_site_apply_unchanged_and_absent(tmp_path):
    runner = FakeRunner()
    res = make_site_service(tmp_path, runner).run()
    assert res["changed"] and res["reloaded"]
    assert os.listdir(str(tmp_path)) == ["myapp.conf"]
    assert ["nginx", "-t"] in runner.calls and ["nginx", "-s", "reload"] in runner.calls
    runner.calls[:] = []
    assert not make_site_service(tmp_path, runner).run()["changed"] and runner.calls == []
    gone = make_site_service(tmp_path, runner, state="absent").run()
    assert gone["changed"] and os.listdir(str(tmp_path)) == []
    assert not make_site_service(tmp_path, runner, state="absent").run()["changed"]


def test_site_failed_check_restores_previous(tmp_path):
    make_site_service(tmp_path, FakeRunner()).run()
    old = (tmp_path / "myapp.conf").read_text()
    runner = FakeRunner(test_ok=False, message='nginx: [emerg] cannot load certificate "/missing.crt"')
    with pytest.raises(LxdctlError, match="cannot load certificate") as err:
        make_site_service(tmp_path, runner, tls_certificate="/missing.crt", tls_certificate_key="/missing.key").run()
    assert "previous one is back" in err.value.msg
    assert (tmp_path / "myapp.conf").read_text() == old
    assert not [c for c in runner.calls if "reload" in c]
    assert sorted(os.listdir(str(tmp_path))) == ["myapp.conf"]  # no temp file left


def test_site_failed_check_of_new_site_removes_it(tmp_path):
    with pytest.raises(LxdctlError):
        make_site_service(tmp_path, FakeRunner(test_ok=False)).run()
    assert os.listdir(str(tmp_path)) == []


def test_a_site_written_by_a_killed_run_is_reloaded_by_the_rerun(tmp_path):
    """Killed after the write, before the reload: the file matches, the mark makes the rerun reload."""
    first = FakeRunner()
    service = make_site_service(tmp_path, first)
    service.nginx.reload = lambda: os.kill(os.getpid(), 0) or (_ for _ in ()).throw(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):  # stands in for the SIGKILL between write and reload
        service.run()
    assert sorted(os.listdir(str(tmp_path))) == [".reload-pending", "myapp.conf"]

    rerun = FakeRunner()
    res = make_site_service(tmp_path, rerun).run()
    assert res["changed"] and res["reloaded"]
    assert ["nginx", "-s", "reload"] in rerun.calls
    assert os.listdir(str(tmp_path)) == ["myapp.conf"]
    # Once reloaded, a rerun is a no-op again.
    rerun.calls[:] = []
    assert not make_site_service(tmp_path, rerun).run()["changed"] and rerun.calls == []


def test_check_mode_does_not_finish_a_pending_reload(tmp_path):
    make_site_service(tmp_path, FakeRunner()).run()
    (tmp_path / ".reload-pending").write_text("")
    runner = FakeRunner()
    res = make_site_service(tmp_path, runner, check=True).run()
    assert not res["changed"] and runner.calls == []
    assert (tmp_path / ".reload-pending").exists()


def test_a_failed_check_keeps_a_mark_it_did_not_make_and_leaves_none_of_its_own(tmp_path):
    with pytest.raises(LxdctlError):
        make_site_service(tmp_path, FakeRunner(test_ok=False)).run()
    assert not (tmp_path / ".reload-pending").exists()
    make_site_service(tmp_path, FakeRunner()).run()
    (tmp_path / ".reload-pending").write_text("")  # another run's write, still to be reloaded
    with pytest.raises(LxdctlError):
        make_site_service(tmp_path, FakeRunner(test_ok=False), tls_certificate="/m.crt",
                          tls_certificate_key="/m.key").run()
    assert (tmp_path / ".reload-pending").exists()


def test_a_site_written_while_nginx_is_stopped_fails_clearly_and_leaves_nothing(tmp_path):
    service = make_site_service(tmp_path, FakeRunner())
    service.nginx.master_pid = lambda: None
    with pytest.raises(LxdctlError, match="nginx is not running, so site myapp cannot be served"):
        service.run()
    assert os.listdir(str(tmp_path)) == []


def test_a_site_removed_while_nginx_is_stopped_is_gone(tmp_path):
    make_site_service(tmp_path, FakeRunner()).run()
    service = make_site_service(tmp_path, FakeRunner(), state="absent")
    service.nginx.master_pid = lambda: None
    res = service.run()
    assert res["changed"] and not res["reloaded"]
    assert os.listdir(str(tmp_path)) == []


def test_reload_prefers_systemd(tmp_path, monkeypatch):
    runner = FakeRunner()
    nginx = _nginx.Nginx(site_params(sites_dir=str(tmp_path)), run_command=runner)
    nginx.running_under_systemd = lambda: True
    assert nginx.reload() is True
    assert runner.calls[-1] == ["systemctl", "reload", "nginx"]
    nginx.running_under_systemd = lambda: False
    nginx.master_pid = lambda: None
    assert nginx.reload() is False


# --- ACME -----------------------------------------------------------------------------
def test_es256_jws_verifies():
    key = _acme.generate_key()
    body = _acme.jws(key, "https://acme.test/new-acct", "nonce1", {"termsOfServiceAgreed": True})
    import base64
    import json

    def unb64(text):
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    protected = json.loads(unb64(body["protected"]))
    assert protected["alg"] == "ES256" and protected["jwk"]["kty"] == "EC" and protected["url"] == "https://acme.test/new-acct"
    sig = unb64(body["signature"])
    assert len(sig) == 64
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    key.public_key().verify(der, ("%s.%s" % (body["protected"], body["payload"])).encode(), ec.ECDSA(hashes.SHA256()))
    as_get = _acme.jws(key, "https://acme.test/order/1", "n2", None, kid="https://acme.test/acct/1")
    assert as_get["payload"] == "" and "kid" in json.loads(unb64(as_get["protected"]))


def test_rsa_account_key_signs_rs256():
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    alg, sig = _acme.sign(key, b"data")
    assert alg == "RS256" and len(sig) == 256
    assert set(_acme.jwk(key)) == {"e", "kty", "n"} and _acme.jwk(key)["e"] == "AQAB"


def test_thumbprint_is_stable_and_url_safe():
    key = _acme.generate_key()
    thumb = _acme.jwk_thumbprint(key)
    assert thumb == _acme.jwk_thumbprint(key) and len(thumb) == 43 and "=" not in thumb


def test_csr_carries_all_domains():
    key = _acme.generate_key()
    csr = x509.load_der_x509_csr(_acme.make_csr(key, ["a.example.com", "b.example.com"]))
    sans = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert sans == ["a.example.com", "b.example.com"] and csr.is_signature_valid


def write_cert(tmp_path, domains, days, key=None):
    key = key or _acme.generate_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, domains[0])])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(d) for d in domains]), critical=False)
        .sign(key, hashes.SHA256())
    )
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = str(tmp_path / "c.crt"), str(tmp_path / "c.key")
    with open(cert_path, "wb") as handle:
        handle.write(cert.public_bytes(serialization.Encoding.PEM))
    _acme.write_file(key_path, _acme.key_to_pem(key), 0o600)
    return cert_path, key_path


def test_renewal_reasons(tmp_path):
    cert_path, key_path = write_cert(tmp_path, ["a.example.com", "b.example.com"], 90)
    assert _acme.renewal_reason(cert_path, key_path, ["b.example.com", "a.example.com"], 30, False) is None
    assert _acme.renewal_reason(cert_path, key_path, ["a.example.com", "b.example.com"], 30, True) == "forced"
    assert "differ" in _acme.renewal_reason(cert_path, key_path, ["a.example.com"], 30, False)
    assert "expires within 100 days" in _acme.renewal_reason(cert_path, key_path, ["a.example.com", "b.example.com"], 100, False)
    assert "no certificate" in _acme.renewal_reason(str(tmp_path / "none.crt"), key_path, ["a.example.com"], 30, False)
    _acme.write_file(key_path, _acme.key_to_pem(_acme.generate_key()), 0o600)
    assert "does not belong" in _acme.renewal_reason(cert_path, key_path, ["a.example.com", "b.example.com"], 30, False)
    assert oct(os.stat(key_path).st_mode & 0o777) == "0o600"


def test_check_mode_reports_would_issue_without_network(tmp_path):
    settings = acme_certificate.resolve_settings(
        {"domains": ["a.example.com"], "directory_url": None, "ca_bundle": None, "webroot": None,
         "cert_path": str(tmp_path / "a.crt"), "key_path": str(tmp_path / "a.key"),
         "account_key_path": str(tmp_path / "acct.key"), "email": None, "renew_before_days": 30,
         "force": False, "timeout": 10},
        config={"acme": {"directory_url": "https://127.0.0.1:1/dir", "ca_bundle": "/ca.pem"}},
    )
    res = acme_certificate.CertificateService(FakeModule({}, check_mode=True), settings).run()
    assert res["changed"] and "no certificate" in res["reason"]
    assert res["diff"]["after"]["domains"] == ["a.example.com"]
    assert os.listdir(str(tmp_path)) == []


def acme_params(**overrides):
    params = {"domains": ["a.example.com"], "directory_url": None, "ca_bundle": None, "webroot": None, "cert_path": None,
              "key_path": None, "account_key_path": None, "email": None, "renew_before_days": 30, "force": False,
              "timeout": 10}
    params.update(overrides)
    return params


def test_acme_settings_from_platform_config():
    config = {"acme": {"directory_url": "https://127.0.0.1:14000/dir", "ca_bundle": "/etc/lxdctl/pebble/ca.pem"},
              "nginx": {"acme_webroot": "/srv/webroot", "cert_dir": "/srv/certs"}}
    s = acme_certificate.resolve_settings(acme_params(domains=["a.example.com", "b.example.com", "a.example.com"]), config)
    assert s["directory_url"] == "https://127.0.0.1:14000/dir" and s["verify"] == "/etc/lxdctl/pebble/ca.pem"
    assert s["webroot"] == "/srv/webroot" and s["domains"] == ["a.example.com", "b.example.com"]
    assert s["cert_path"] == "/srv/certs/a.example.com.crt" and s["key_path"] == "/srv/certs/a.example.com.key"
    other = acme_certificate.resolve_settings(acme_params(directory_url="https://acme.example.org/dir"), config)
    assert other["verify"] is True  # the platform's CA bundle belongs to the platform's directory only
    default = acme_certificate.resolve_settings(acme_params(), {})
    assert default["directory_url"] == _acme.LETSENCRYPT_DIRECTORY


@pytest.mark.parametrize(
    "overrides, fragment",
    [({"email": "a@b.c\nx"}, "email"), ({"email": "a;b@c"}, "email"), ({"email": "nobody"}, "e-mail"),
     ({"directory_url": "http://plain/dir"}, "https"), ({"renew_before_days": -1}, "negative"),
     ({"domains": []}, "at least one")],
)
def test_acme_settings_reject(overrides, fragment):
    with pytest.raises(ValidationError, match=fragment):
        acme_certificate.resolve_settings(acme_params(**overrides), {})


def test_acme_argspec_rejects_bad_domains():
    errors, _ = validate(acme_certificate.argument_spec(), {"domains": [LONG_LABEL]})
    assert "longer than 63" in errors
    errors, _ = validate(acme_certificate.argument_spec(), {"domains": ["a.example.com;evil"]})
    assert "domains" in errors


def test_malformed_token_is_refused(tmp_path):
    class Client(_acme.AcmeClient):
        def __init__(self):
            self.key = _acme.generate_key()

        def get(self, context, url):
            return {"identifier": {"value": "a.example.com"}, "status": "pending",
                    "challenges": [{"type": "http-01", "token": "../../etc/passwd", "url": "x"}]}

    with pytest.raises(LxdctlError, match="malformed"):
        Client().authorize("https://acme.test/authz/1", str(tmp_path))
    assert os.listdir(str(tmp_path)) == []

"""``lxdctl dns add|update|delete|list`` against the platform's PowerDNS, checked with dig."""
import json
import os
import subprocess
import sys

import pytest

from lxdctl.collection import playbook_path
from tests.integration.data_support import run_module
from tests.support.ansible_module import ansible_env
from tests.support.cli import lxdctl

PROJECT = "it-ops-dnsp"


def dig(cfg, name, rtype):
    pdns = cfg["pdns"]
    proc = subprocess.run(["dig", "+short", "+norecurse", "+time=3", "+tries=2", "@%s" % pdns["dns_address"],
                           "-p", str(pdns["dns_port"]), name, rtype], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    return sorted(proc.stdout.split("\n")[:-1])


@pytest.fixture(scope="module")
def zone(platform_config):
    managed = [z.rstrip(".") for z in platform_config["dns"]["managed_zones"]]
    assert managed, "the platform has no managed zone"
    base = managed[0]
    ok = run_module("lxdctl_state", {"entity": "project", "project": PROJECT, "values": {"status": "running"}})
    assert not ok.failed, ok
    yield base
    for name, rtype in (("it-ops-a", "A"), ("it-ops-a", "AAAA"), ("it-ops-c", "CNAME"), ("it-ops-txt", "TXT"),
                        ("it-ops-mx", "MX")):
        run_module("powerdns_record", {"zone": base, "name": "%s.%s" % (name, base), "type": rtype, "state": "absent"})
    run_module("lxdctl_state", {"entity": "project", "project": PROJECT, "state": "absent"})


def test_it_ops_dns_add_update_delete(platform_config, zone):
    cfg = platform_config
    fqdn = "it-ops-a.%s" % zone
    lxdctl("dns", "delete", fqdn, "--type", "A")  # a leftover of an earlier run goes

    dry = lxdctl("dns", "add", fqdn, "--type", "A", "--content", "10.77.0.55", "--dry-run")
    assert "dry run" in dry.stderr
    assert dig(cfg, fqdn, "A") == []

    lxdctl("dns", "add", fqdn, "--type", "A", "--content", "10.77.0.55", "--ttl", "300", "--project", PROJECT)
    assert dig(cfg, fqdn, "A") == ["10.77.0.55"]
    again = lxdctl("dns", "add", fqdn, "--type", "a", "--content", "10.77.0.55", "--ttl", "300", "--project", PROJECT)
    assert "done: 0 changes" in again.stderr
    other = lxdctl("dns", "add", fqdn, "--type", "A", "--content", "10.77.0.56", check=False)
    assert other.returncode == 1 and "dns update" in other.stderr
    assert dig(cfg, fqdn, "A") == ["10.77.0.55"]

    listed = json.loads(lxdctl("dns", "list", "--zone", zone, "--output", "json").stdout)
    mine = [r for r in listed if r["name"] == fqdn and r["type"] == "A"]
    assert mine == [{"zone": zone, "name": fqdn, "type": "A", "ttl": 300, "content": "10.77.0.55",
                     "disabled": False, "project": PROJECT}]
    assert fqdn in lxdctl("dns", "list").stdout

    # the state holds the project's record
    info = run_module("lxdctl_info", {"project": PROJECT})
    assert [(r["name"], r["type"], r["content"], r["ttl"]) for r in info["dns_records"]] == \
        [(fqdn + ".", "A", "10.77.0.55", 300)]

    lxdctl("dns", "update", fqdn, "--type", "A", "--content", "10.77.0.57")
    assert dig(cfg, fqdn, "A") == ["10.77.0.57"]
    info = run_module("lxdctl_info", {"project": PROJECT})
    assert [r["content"] for r in info["dns_records"]] == ["10.77.0.57"]  # owner found without --project
    missing = lxdctl("dns", "update", "it-ops-none.%s" % zone, "--type", "A", "--content", "10.77.0.58", check=False)
    assert missing.returncode == 1 and "dns add" in missing.stderr

    lxdctl("dns", "delete", fqdn, "--type", "A")
    assert dig(cfg, fqdn, "A") == []
    assert run_module("lxdctl_info", {"project": PROJECT})["dns_records"] == []


def test_it_ops_dns_other_types(platform_config, zone):
    cfg = platform_config
    lxdctl("dns", "add", "it-ops-a.%s" % zone, "--type", "AAAA", "--content", "fd00::1")
    assert dig(cfg, "it-ops-a.%s" % zone, "AAAA") == ["fd00::1"]
    lxdctl("dns", "add", "it-ops-c.%s" % zone, "--type", "CNAME", "--content", "it-ops-a.%s" % zone)
    assert dig(cfg, "it-ops-c.%s" % zone, "CNAME") == ["it-ops-a.%s." % zone]
    lxdctl("dns", "add", "it-ops-txt.%s" % zone, "--type", "TXT", "--content", "v=spf1 -all")
    assert dig(cfg, "it-ops-txt.%s" % zone, "TXT") == ['"v=spf1 -all"']
    lxdctl("dns", "add", "it-ops-mx.%s" % zone, "--type", "MX", "--content", "mail.%s" % zone, "--priority", "20")
    assert dig(cfg, "it-ops-mx.%s" % zone, "MX") == ["20 mail.%s." % zone]
    for name, rtype in (("it-ops-a", "AAAA"), ("it-ops-c", "CNAME"), ("it-ops-txt", "TXT"), ("it-ops-mx", "MX")):
        lxdctl("dns", "delete", "%s.%s" % (name, zone), "--type", rtype)
        assert dig(cfg, "%s.%s" % (name, zone), rtype) == []


def test_it_ops_dns_zone_created_on_demand(platform_config, tmp_path):
    """A managed zone missing from PowerDNS is created by the first record under it (the
    playbook run directly, as ops or AWX would, with a configuration that manages a new zone)."""
    cfg = platform_config
    new_zone = "it-ops-zone.test"
    config = dict(cfg, dns={"managed_zones": [new_zone], "default_zone": new_zone})
    path = tmp_path / "platform.json"
    path.write_text(json.dumps(config))
    os.chmod(str(path), 0o600)
    run_module("powerdns_zone", {"name": new_zone, "state": "absent"})
    try:
        assert dig(cfg, new_zone, "SOA") == []
        extra = json.dumps({"dns_fqdn": "www." + new_zone, "dns_type": "A", "dns_content": "10.77.0.61",
                            "dns_config_path": str(path)})
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                               "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable, "-e", extra,
                               playbook_path("dns_record")], capture_output=True, text=True, timeout=300,
                              env=dict(ansible_env(), ANSIBLE_STDOUT_CALLBACK="default"))
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert dig(cfg, new_zone, "SOA") != []
        assert dig(cfg, "www." + new_zone, "A") == ["10.77.0.61"]
    finally:
        run_module("powerdns_zone", {"name": new_zone, "state": "absent"})
    assert dig(cfg, new_zone, "SOA") == []


@pytest.mark.parametrize("args,expect", [
    (["add", "it-ops-x.lxdctl.test", "--type", "A", "--content", "300.1.1.1"], "IPv4"),
    (["add", "it-ops-x.lxdctl.test", "--type", "AAAA", "--content", "10.0.0.1"], "IPv6"),
    (["add", "it-ops-x.lxdctl.test", "--type", "CNAME", "--content", "not a name"], "DNS name"),
    (["add", "it-ops-x.lxdctl.test", "--type", "TXT", "--content", "a\"b;{{ x }}"], "TXT"),
    (["add", "it-ops-x.lxdctl.test", "--type", "SRV", "--content", "x"], "SRV"),
    (["add", "it-ops-x.lxdctl.test", "--type", "A", "--content", "10.0.0.1", "--priority", "5"], "priority"),
    (["add", "bad_name!.lxdctl.test", "--type", "A", "--content", "10.0.0.1"], "DNS name"),
])
def test_it_ops_dns_bad_input(args, expect):
    proc = lxdctl("dns", *args, check=False)
    assert proc.returncode == 2, proc.stderr
    assert expect in proc.stderr


def test_it_ops_dns_unmanaged_and_missing_project(zone):
    proc = lxdctl("dns", "add", "www.example.org", "--type", "A", "--content", "10.77.0.1", check=False)
    assert proc.returncode == 1 and "not under any zone" in proc.stderr
    proc = lxdctl("dns", "add", "it-ops-a.%s" % zone, "--type", "A", "--content", "10.77.0.1",
                  "--project", "it-ops-nosuch", check=False)
    assert proc.returncode == 1 and "does not exist" in proc.stderr

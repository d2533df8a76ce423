"""powerdns_zone and powerdns_record against the platform's PowerDNS, checked with dig and curl."""
import json
import subprocess
import time

import pytest

from tests.support.ansible_module import run_module

pytestmark = pytest.mark.integration

ZONE = "it-dns-zone.lxdctl.test"
REC_ZONE = "it-dns-rec.lxdctl.test"


@pytest.fixture(scope="module")
def pdns(platform_config):
    return platform_config["pdns"]


def api(pdns, path):
    """GET through curl (an independent client): (HTTP status, parsed body or None)."""
    url = "%s/api/v1/servers/%s%s" % (pdns["api_url"].rstrip("/"), pdns.get("server_id", "localhost"), path)
    proc = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "X-API-Key: %s" % pdns["api_key"], url],
        capture_output=True, text=True, timeout=30, check=True,
    )
    body, _, status = proc.stdout.rpartition("\n")
    try:
        return int(status), json.loads(body)
    except ValueError:
        return int(status), None


def dig(pdns, name, rtype, short=True):
    cmd = ["dig", "@%s" % pdns.get("dns_address", "127.0.0.1"), "-p", str(pdns.get("dns_port", 5300)),
           "+time=3", "+tries=2", name, rtype]
    if short:
        cmd.insert(1, "+short")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout


def dig_set(pdns, name, rtype, expected, timeout=25):
    """The set of answers, waiting out PowerDNS's caches for the expected one."""
    deadline = time.time() + timeout
    while True:
        answers = sorted(line.strip() for line in dig(pdns, name, rtype).splitlines() if line.strip())
        if answers == sorted(expected) or time.time() > deadline:
            return answers
        time.sleep(1)


def zone_args(**extra):
    args = {"name": ZONE}
    args.update(extra)
    return args


def test_zone_lifecycle(pdns):
    run_module("powerdns_zone", zone_args(state="absent"))

    check = run_module("powerdns_zone", zone_args(), check=True, diff=True)
    assert not check.failed, check
    assert check.changed and check["diff"]["before"] == {}
    assert api(pdns, "/zones/%s." % ZONE)[0] == 404

    created = run_module("powerdns_zone", zone_args(), diff=True)
    assert not created.failed, created
    assert created.changed and created["zone"]["kind"] == "Native"
    status, body = api(pdns, "/zones/%s." % ZONE)
    assert status == 200 and body["kind"] == "Native"
    assert "status: NOERROR" in dig(pdns, ZONE, "SOA", short=False)

    again = run_module("powerdns_zone", zone_args())
    assert not again.failed and not again.changed, again

    modified = run_module("powerdns_zone", zone_args(kind="Master", nameservers=["ns1.%s" % ZONE]), diff=True)
    assert not modified.failed, modified
    assert modified.changed
    assert modified["diff"]["before"]["kind"] == "Native" and modified["diff"]["after"]["kind"] == "Master"
    status, body = api(pdns, "/zones/%s." % ZONE)
    assert body["kind"] == "Master"
    assert dig_set(pdns, ZONE, "NS", ["ns1.%s." % ZONE]) == ["ns1.%s." % ZONE]

    same = run_module("powerdns_zone", zone_args(kind="Master", nameservers=["ns1.%s" % ZONE]))
    assert not same.failed and not same.changed, same

    check_absent = run_module("powerdns_zone", zone_args(state="absent"), check=True)
    assert check_absent.changed and api(pdns, "/zones/%s." % ZONE)[0] == 200

    gone = run_module("powerdns_zone", zone_args(state="absent"))
    assert not gone.failed and gone.changed, gone
    assert api(pdns, "/zones/%s." % ZONE)[0] == 404
    assert "status: NOERROR" not in dig(pdns, ZONE, "SOA", short=False)

    gone_again = run_module("powerdns_zone", zone_args(state="absent"))
    assert not gone_again.failed and not gone_again.changed


@pytest.mark.parametrize(
    "bad", [{"name": "bad;zone.lxdctl.test"}, {"name": "a" * 64 + ".lxdctl.test"}, {"name": ".".join(["a" * 60] * 5)},
            {"name": "x{y}.lxdctl.test"}, {"name": ZONE, "kind": "Slave"}]
)
def test_zone_bad_input_writes_nothing(pdns, bad):
    result = run_module("powerdns_zone", bad)
    assert result.failed
    status, zones = api(pdns, "/zones")
    names = [z["name"] for z in zones]
    assert status == 200
    assert not [n for n in names if "bad" in n or n.startswith(("x{", "x%7b", "aaaaaaaaaa"))], names


@pytest.fixture(scope="module")
def rec_zone(pdns):
    result = run_module("powerdns_zone", {"name": REC_ZONE, "nameservers": ["ns1.%s" % REC_ZONE]})
    assert not result.failed, result
    yield REC_ZONE
    run_module("powerdns_zone", {"name": REC_ZONE, "state": "absent"})


def rec(**extra):
    args = {"zone": REC_ZONE}
    args.update(extra)
    return args


def rrset(pdns, name, rtype):
    status, body = api(pdns, "/zones/%s." % REC_ZONE)
    assert status == 200
    for item in body["rrsets"]:
        if item["name"] == name and item["type"] == rtype:
            return item
    return None


def test_record_lifecycle(pdns, rec_zone):
    fqdn = "www.%s" % REC_ZONE
    run_module("powerdns_record", rec(name="www", type="A", state="absent"))

    check = run_module("powerdns_record", rec(name="www", type="A", records=["10.77.0.1", "10.77.0.2"]), check=True, diff=True)
    assert not check.failed, check
    assert check.changed and check["diff"]["before"] == {}
    assert rrset(pdns, fqdn + ".", "A") is None
    assert dig_set(pdns, fqdn, "A", []) == []

    applied = run_module("powerdns_record", rec(name="www", type="A", records=["10.77.0.1", "10.77.0.2"]), diff=True)
    assert not applied.failed and applied.changed, applied
    assert applied["diff"]["after"]["records"] == ["10.77.0.1", "10.77.0.2"]
    assert dig_set(pdns, fqdn, "A", ["10.77.0.1", "10.77.0.2"]) == ["10.77.0.1", "10.77.0.2"]
    assert rrset(pdns, fqdn + ".", "A")["ttl"] == 3600

    # The same records in another order, and the name written absolute: unchanged.
    again = run_module("powerdns_record", rec(name=fqdn + ".", type="A", records=["10.77.0.2", "10.77.0.1"]))
    assert not again.failed and not again.changed, again

    modified = run_module("powerdns_record", rec(name="www", type="A", records=["10.77.0.3"], ttl=60), diff=True)
    assert not modified.failed and modified.changed, modified
    assert modified["diff"]["before"] == {"name": fqdn + ".", "type": "A", "ttl": 3600, "records": ["10.77.0.1", "10.77.0.2"]}
    assert modified["diff"]["after"] == {"name": fqdn + ".", "type": "A", "ttl": 60, "records": ["10.77.0.3"]}
    assert dig_set(pdns, fqdn, "A", ["10.77.0.3"]) == ["10.77.0.3"]
    assert rrset(pdns, fqdn + ".", "A")["ttl"] == 60

    check_absent = run_module("powerdns_record", rec(name="www", type="A", state="absent"), check=True)
    assert check_absent.changed and rrset(pdns, fqdn + ".", "A") is not None

    gone = run_module("powerdns_record", rec(name="www", type="A", state="absent"))
    assert not gone.failed and gone.changed, gone
    assert rrset(pdns, fqdn + ".", "A") is None
    assert dig_set(pdns, fqdn, "A", []) == []

    gone_again = run_module("powerdns_record", rec(name="www", type="A", state="absent"))
    assert not gone_again.failed and not gone_again.changed


@pytest.mark.parametrize(
    "args, dig_name, dig_expected",
    [
        ({"name": "v6", "type": "AAAA", "records": ["2001:db8::10"]}, "v6", ["2001:db8::10"]),
        ({"name": "alias", "type": "CNAME", "records": ["www.%s" % REC_ZONE]}, "alias", ["www.%s." % REC_ZONE]),
        ({"name": "@", "type": "MX", "priority": 20, "records": ["mx2.%s" % REC_ZONE, "mx1.%s" % REC_ZONE]}, "",
         ["20 mx1.%s." % REC_ZONE, "20 mx2.%s." % REC_ZONE]),
        ({"name": "txt", "type": "TXT", "records": ["v=spf1 -all", "hello world"]}, "txt", ['"hello world"', '"v=spf1 -all"']),
    ],
    ids=["AAAA", "CNAME", "MX", "TXT"],
)
def test_record_types(pdns, rec_zone, args, dig_name, dig_expected):
    name = ("%s.%s" % (dig_name, REC_ZONE)) if dig_name else REC_ZONE
    applied = run_module("powerdns_record", rec(**args))
    assert not applied.failed and applied.changed, applied
    assert dig_set(pdns, name, args["type"], dig_expected) == sorted(dig_expected)
    reordered = dict(args, records=list(reversed(args["records"])))
    again = run_module("powerdns_record", rec(**reordered))
    assert not again.failed and not again.changed, again
    gone = run_module("powerdns_record", rec(name=args["name"], type=args["type"], state="absent"))
    assert not gone.failed and gone.changed
    assert dig_set(pdns, name, args["type"], []) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"name": "inj", "type": "TXT", "records": ["x\ninj2 3600 IN A 6.6.6.6"]},
        {"name": "inj", "type": "TXT", "records": ["a; b"]},
        {"name": "inj", "type": "TXT", "records": ["{a}"]},
        {"name": "inj", "type": "A", "records": ["10.0.0.1;"]},
        {"name": "inj", "type": "CNAME", "records": ["a.example.com\n"]},
        {"name": "inj\nevil", "type": "A", "records": ["10.0.0.1"]},
        {"name": "inj;x", "type": "A", "records": ["10.0.0.1"]},
        {"name": "a" * 64, "type": "A", "records": ["10.0.0.1"]},
    ],
)
def test_record_bad_input_writes_nothing(pdns, rec_zone, bad):
    result = run_module("powerdns_record", rec(**bad))
    assert result.failed and "msg" in result
    status, body = api(pdns, "/zones/%s." % REC_ZONE)
    assert [r["name"] for r in body["rrsets"] if r["name"].startswith(("inj", "aaaaaaaaaa"))] == []


def test_record_in_missing_zone_fails(pdns):
    result = run_module("powerdns_record", {"zone": "it-dns-missing.lxdctl.test", "name": "www", "type": "A",
                                            "records": ["10.77.0.1"]})
    assert result.failed and "does not exist" in result["msg"]


def test_record_with_create_zone_makes_the_missing_zone(pdns):
    zone = "it-dns-autozone.lxdctl.test"
    args = {"zone": zone, "name": "www", "type": "A", "records": ["10.77.0.7"], "create_zone": True}
    run_module("powerdns_zone", {"name": zone, "state": "absent"})
    try:
        check = run_module("powerdns_record", args, check=True)
        assert check.changed and check["zone_created"], check
        assert api(pdns, "/zones/%s." % zone)[0] == 404  # check mode wrote nothing

        made = run_module("powerdns_record", args)
        assert made.changed and made["zone_created"], made
        status, body = api(pdns, "/zones/%s." % zone)
        assert status == 200 and body["kind"] == "Native"
        assert dig_set(pdns, "www.%s" % zone, "A", ["10.77.0.7"]) == ["10.77.0.7"]

        again = run_module("powerdns_record", args)
        assert not again.changed and not again["zone_created"], again
    finally:
        run_module("powerdns_zone", {"name": zone, "state": "absent"})
    assert api(pdns, "/zones/%s." % zone)[0] == 404

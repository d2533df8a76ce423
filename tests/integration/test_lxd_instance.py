"""lxd_instance against the real LXD, each step checked with the lxc client.

Pattern: check mode, apply, apply again (unchanged), modify, power states, absent, absent again.
Also: bad input creates nothing, and the module works against LXD over HTTPS with a client cert.
"""
import json
import os
import subprocess
import time

import pytest

from tests.integration.lxd_support import https_endpoint, run_module

pytestmark = pytest.mark.integration

PREFIX = "it-inst-"
IMAGE = "lxdctl-base"
PROFILE = "lxdctl"
POOL = "lxdctl"


def lxc(*args, check=True):
    proc = subprocess.run(["lxc"] + list(args), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("lxc %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


def lxc_instance(name):
    """The instance as `lxc list --format json` shows it, or None."""
    found = json.loads(lxc("list", "--format", "json", "^%s$" % name).stdout)
    return found[0] if found else None


def lxc_ipv4(entry):
    addrs = ((entry.get("state") or {}).get("network") or {}).get("eth0", {}).get("addresses", [])
    return [a["address"] for a in addrs if a["family"] == "inet" and a["scope"] == "global"]


def our_instances():
    return sorted(e["name"] for e in json.loads(lxc("list", "--format", "json").stdout)
                  if e["name"].lower().startswith(PREFIX))


def delete_quietly(name):
    lxc("delete", "--force", name, check=False)


@pytest.fixture
def instance_name(request):
    name = PREFIX + request.node.name.split("[")[0].replace("test_", "").replace("_", "-")[:40]
    delete_quietly(name)
    yield name
    delete_quietly(name)


def args(name, **extra):
    base = dict(name=name, image=IMAGE, profiles=[PROFILE], state="started", timeout=60)
    base.update(extra)
    return base


def test_lifecycle(instance_name):
    name = instance_name
    config = {"limits.memory": "256MiB", "user.lxdctl.project": "it-life", "security.nesting": False}

    # check mode: reports the change, creates nothing
    res = run_module("lxd_instance", args(name, config=config), check=True, diff=True)
    assert not res.failed, res
    assert res.changed
    assert res["diff"]["before"] == {}
    assert res["diff"]["after"]["config"]["security.nesting"] == "false"
    assert lxc_instance(name) is None

    # apply: created, running, with an address
    started = time.time()
    res = run_module("lxd_instance", args(name, config=config), diff=True)
    elapsed = time.time() - started
    assert not res.failed, res
    assert res.changed
    entry = lxc_instance(name)
    assert entry["status"] == "Running"
    assert entry["profiles"] == [PROFILE]
    assert entry["config"]["limits.memory"] == "256MiB"
    assert entry["config"]["user.lxdctl.project"] == "it-life"
    assert res["ipv4"] and res["ipv4"] in lxc_ipv4(entry)
    assert res["addresses"]["ipv4"] == lxc_ipv4(entry)
    assert res["instance"]["status"] == "Running"
    assert not any(k.startswith("volatile.") for k in res["instance"]["config"])
    print("module create+start+address: %.2fs" % elapsed)

    # apply again: unchanged
    res = run_module("lxd_instance", args(name, config=config), diff=True)
    assert not res.failed, res
    assert not res.changed
    assert res["diff"]["before"] == res["diff"]["after"]

    # modify in check mode: predicted, not applied
    modified = dict(config, **{"limits.memory": "512MiB", "user.lxdctl.runtime": "python"})
    res = run_module("lxd_instance", args(name, config=modified), check=True, diff=True)
    assert res.changed
    assert lxc("config", "get", name, "limits.memory").stdout.strip() == "256MiB"

    # modify: config changes, label added; exact (a dropped key is removed)
    res = run_module("lxd_instance", args(name, config=modified), diff=True)
    assert not res.failed, res
    assert res.changed
    assert res["diff"]["before"]["config"]["limits.memory"] == "256MiB"
    assert res["diff"]["after"]["config"]["limits.memory"] == "512MiB"
    assert lxc("config", "get", name, "limits.memory").stdout.strip() == "512MiB"
    assert lxc("config", "get", name, "user.lxdctl.runtime").stdout.strip() == "python"
    assert lxc_instance(name)["status"] == "Running"
    res = run_module("lxd_instance", args(name, config={"limits.memory": "512MiB"}))
    assert res.changed
    shown = lxc("config", "show", name).stdout
    assert "user.lxdctl.project" not in shown and "volatile.uuid" in shown  # LXD's own keys are kept

    # stopped, stopped again
    res = run_module("lxd_instance", args(name, state="stopped"))
    assert res.changed and res["instance"]["status"] == "Stopped"
    assert lxc_instance(name)["status"] == "Stopped"
    assert not run_module("lxd_instance", args(name, state="stopped")).changed

    # started from stopped, then started again is unchanged
    res = run_module("lxd_instance", args(name, state="started"))
    assert res.changed and res["ipv4"]
    assert lxc_instance(name)["status"] == "Running"
    assert not run_module("lxd_instance", args(name, state="started")).changed

    # restarted: always a change, and PID 1 is a new process (its start time moves on)
    def pid1_start():
        stat = lxc("exec", name, "--", "cat", "/proc/1/stat").stdout
        return int(stat.rsplit(")", 1)[1].split()[19])

    before_restart = pid1_start()
    res = run_module("lxd_instance", args(name, state="restarted"))
    assert not res.failed, res
    assert res.changed and res["ipv4"]
    assert lxc_instance(name)["status"] == "Running"
    assert pid1_start() > before_restart

    # absent, absent again
    res = run_module("lxd_instance", dict(name=name, state="absent"), check=True)
    assert res.changed and lxc_instance(name) is not None
    res = run_module("lxd_instance", dict(name=name, state="absent"), diff=True)
    assert res.changed and res["instance"] is None
    assert lxc_instance(name) is None
    res = run_module("lxd_instance", dict(name=name, state="absent"))
    assert not res.failed and not res.changed


def test_present_pool_devices(instance_name):
    name = instance_name
    devices = {"eth0": {"type": "nic", "network": "lxdctlbr0", "name": "eth0", "security.port_isolation": True}}
    res = run_module("lxd_instance", args(name, state="present", pool=POOL, devices=devices))
    assert not res.failed, res
    assert res.changed and res["instance"]["status"] == "Stopped" and res["ipv4"] is None
    entry = lxc_instance(name)
    assert entry["status"] == "Stopped"
    assert entry["devices"]["root"] == {"type": "disk", "path": "/", "pool": POOL}
    assert entry["devices"]["eth0"]["security.port_isolation"] == "true"

    assert not run_module("lxd_instance", args(name, state="present", pool=POOL, devices=devices)).changed

    devices["eth0"]["security.port_isolation"] = "false"
    res = run_module("lxd_instance", args(name, state="present", pool=POOL, devices=devices), diff=True)
    assert res.changed
    assert res["diff"]["before"]["devices"]["eth0"]["security.port_isolation"] == "true"
    assert lxc("config", "device", "get", name, "eth0", "security.port_isolation").stdout.strip() == "false"
    assert lxc_instance(name)["status"] == "Stopped"


def test_background_start_returns_before_the_boot_and_the_next_run_collects_it(instance_name):
    name = instance_name
    res = run_module("lxd_instance", args(name, background_start=True))
    assert not res.failed, res
    assert res.changed and res["instance"]["status"] == "Running" and res["ipv4"] is None
    # LXD has the container and is starting it (or has started it) on its own.
    assert lxc_instance(name)["status"] in ("Stopped", "Running")

    res = run_module("lxd_instance", args(name))
    assert not res.failed, res
    assert not res.changed  # the start was the first run's; this one only waited for it
    entry = lxc_instance(name)
    assert entry["status"] == "Running"
    assert res["ipv4"] and res["ipv4"] in lxc_ipv4(entry)
    assert lxc("exec", name, "--", "true").returncode == 0


def test_a_failed_background_start_is_started_again_by_the_next_run(instance_name, tmp_path):
    name = instance_name
    assert not run_module("lxd_instance", args(name, state="present")).failed
    # A disk whose source is gone: LXD accepts the start request and fails it in its operation.
    source = tmp_path / "source"
    source.mkdir()
    lxc("config", "device", "add", name, "gone", "disk", "source=%s" % source, "path=/mnt")
    source.rmdir()
    res = run_module("lxd_instance", args(name, background_start=True))
    assert not res.failed, res
    res = run_module("lxd_instance", args(name))
    assert res.failed and "Failed to start instance %s" % name in res["msg"] and "Missing source path" in res["msg"]
    assert lxc_instance(name)["status"] == "Stopped"
    lxc("config", "device", "remove", name, "gone")
    res = run_module("lxd_instance", args(name))
    assert not res.failed and res.changed, res
    assert lxc_instance(name)["status"] == "Running"


def test_ephemeral_instance_is_deleted_by_lxd_when_it_stops(instance_name):
    name = instance_name
    res = run_module("lxd_instance", args(name, ephemeral=True))
    assert not res.failed and res.changed, res
    assert lxc_instance(name)["ephemeral"] is True
    lxc("stop", "--force", name)
    deadline = time.time() + 30
    while lxc_instance(name) is not None and time.time() < deadline:
        time.sleep(0.3)
    assert lxc_instance(name) is None
    # Removing an ephemeral instance that is still running: stopping it already deletes it.
    assert not run_module("lxd_instance", args(name, ephemeral=True)).failed
    res = run_module("lxd_instance", args(name, state="absent"))
    assert not res.failed and res.changed, res
    assert lxc_instance(name) is None


def test_missing_image_is_a_clear_error(instance_name):
    res = run_module("lxd_instance", args(instance_name, image="it-inst-no-such-image"))
    assert res.failed
    assert "Failed to create instance %s" % instance_name in res["msg"]
    assert lxc_instance(instance_name) is None


@pytest.mark.parametrize("bad,field", [
    (dict(name="it-inst-a;touch /tmp/pwned"), "name: must be"),
    (dict(name="it-inst-$(id)"), "name: must be"),
    (dict(name="it-inst-a/../b"), "name: must be"),
    (dict(name="It-Inst-Upper"), "name: must be"),
    (dict(name="it-inst-" + "x" * 60), "name: must be"),
    (dict(name="it-inst-bad-key", config={"raw.lxc": "lxc.apparmor.profile=unconfined"}), "config.raw.lxc"),
    (dict(name="it-inst-bad-value", config={"user.label": "a\nb"}), "config.user.label"),
    (dict(name="it-inst-bad-device", devices={"eth0": {"network": "lxdctlbr0"}}), "devices.eth0.type"),
    (dict(name="it-inst-bad-image", image="lxdctl-base;id"), "image:"),
    (dict(name="it-inst-bad-profile", profiles=["lxdctl", "../x"]), "profiles:"),
])
def test_bad_input_rejected_nothing_created(bad, field):
    before = our_instances()
    res = run_module("lxd_instance", args(**bad))
    assert res.failed
    assert field in res["msg"], res["msg"]
    assert our_instances() == before
    assert not os.path.exists("/tmp/pwned")


# --- remote LXD over HTTPS with a client certificate (loopback only) -----------------------------
@pytest.fixture
def https_remote(tmp_path):
    with https_endpoint(str(tmp_path)) as remote:
        yield remote


def test_remote_https_with_client_certificate(instance_name, https_remote, tmp_path):
    name = instance_name
    conn = dict(lxd_url=https_remote["url"], lxd_client_cert=https_remote["cert"],
                lxd_client_key=https_remote["key"], lxd_verify="false")

    res = run_module("lxd_instance", dict(args(name, config={"user.lxdctl.remote": "yes"}), **conn))
    assert not res.failed, res
    assert res.changed and res["ipv4"]
    assert lxc_instance(name)["config"]["user.lxdctl.remote"] == "yes"
    assert not run_module("lxd_instance", dict(args(name, config={"user.lxdctl.remote": "yes"}), **conn)).changed

    # the same endpoint without a trusted certificate is refused
    res = run_module("lxd_instance", dict(name=name, state="absent", lxd_url=https_remote["url"],
                                          lxd_verify="false"))
    assert res.failed and "lxd_client_cert" in res["msg"]

    # a certificate LXD does not trust gets nothing done
    other_cert, other_key = str(tmp_path / "other.crt"), str(tmp_path / "other.key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-keyout", other_key, "-out", other_cert, "-days", "1", "-subj", "/CN=lxdctl-it-untrusted"],
                   check=True, capture_output=True)
    res = run_module("lxd_instance", dict(name=name, state="absent", lxd_url=https_remote["url"],
                                          lxd_client_cert=other_cert, lxd_client_key=other_key, lxd_verify="false"))
    assert res.failed, res
    assert lxc_instance(name) is not None

    res = run_module("lxd_instance", dict(dict(name=name, state="absent"), **conn))
    assert not res.failed and res.changed
    assert lxc_instance(name) is None

"""lxd_storage_pool, lxd_network, lxd_profile and lxd_image_build against the real LXD.

Each module follows the pattern check mode, apply, apply again (unchanged), modify, absent,
absent again; every step is checked with the lxc client.  The image build path is tested
with the smallest real case (a base image from the cached base rootfs); the runtime images
that `lxdctl init` built are only checked to be unchanged on a rerun, and each is launched to
run its toolchain (python3 -m venv, node and npm, go run).
"""
import json
import os
import subprocess
import sys
import time

import pytest

from ansible_collections.lxdctl.platform.plugins.modules import lxd_image_build
from tests.integration.lxd_support import run_module

pytestmark = pytest.mark.integration

PREFIX = "it-hostobj-"
POOL = PREFIX + "pool"
NETWORK = PREFIX + "br"
PROFILE = PREFIX + "prof"
IMAGE = PREFIX + "img"
BAD_IMAGE = PREFIX + "bad"
CONTAINER = PREFIX + "py"
PLATFORM_POOL = "lxdctl"
PLATFORM_NETWORK = "lxdctlbr0"
PLATFORM_PROFILE = "lxdctl"


def lxc(*args, check=True, timeout=180):
    proc = subprocess.run(["lxc"] + list(args), capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError("lxc %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


def lxc_json(*args):
    """``lxc query`` of an API path, or None when LXD answers not found."""
    proc = lxc("query", *args, check=False)
    if proc.returncode != 0:
        assert "not found" in proc.stderr.lower(), proc.stderr
        return None
    return json.loads(proc.stdout)


def ok(result):
    assert not result.failed, result.get("msg")
    return result


@pytest.fixture
def clean():
    """Remove this file's test objects before and after a test."""

    def sweep():
        lxc("delete", "--force", CONTAINER, check=False)
        for alias in (IMAGE, BAD_IMAGE):
            lxc("image", "delete", alias, check=False)
        lxc("profile", "delete", PROFILE, check=False)
        lxc("network", "delete", NETWORK, check=False)
        lxc("storage", "delete", POOL, check=False)

    sweep()
    yield
    sweep()


# --- storage pool ---------------------------------------------------------------------------


def test_storage_pool_lifecycle(clean):
    args = {"name": POOL, "driver": "dir"}

    res = ok(run_module("lxd_storage_pool", args, check=True, diff=True))
    assert res.changed and res["diff"]["after"]["driver"] == "dir"
    assert lxc_json("/1.0/storage-pools/" + POOL) is None

    res = ok(run_module("lxd_storage_pool", args))
    assert res.changed
    shown = lxc_json("/1.0/storage-pools/" + POOL)
    assert shown["driver"] == "dir" and shown["status"] == "Created"

    res = ok(run_module("lxd_storage_pool", args, diff=True))
    assert not res.changed and res["diff"]["before"] == res["diff"]["after"]

    # adopting it with driver auto changes nothing either
    assert not ok(run_module("lxd_storage_pool", {"name": POOL})).changed

    modified = dict(args, description="lxdctl test pool")
    res = ok(run_module("lxd_storage_pool", modified, check=True))
    assert res.changed and lxc_json("/1.0/storage-pools/" + POOL)["description"] == ""
    res = ok(run_module("lxd_storage_pool", modified, diff=True))
    assert res.changed and res["diff"]["after"]["description"] == "lxdctl test pool"
    assert lxc_json("/1.0/storage-pools/" + POOL)["description"] == "lxdctl test pool"
    assert not ok(run_module("lxd_storage_pool", modified)).changed

    res = run_module("lxd_storage_pool", dict(args, driver="btrfs"))
    assert res.failed and "cannot change to btrfs" in res["msg"]

    # a dir pool has no btrfs metadata: metadata_profile is ignored, and the result says so
    res = ok(run_module("lxd_storage_pool", dict(modified, metadata_profile="single")))
    assert not res.changed and res["metadata_profile_skipped"] == "dir pools have no btrfs metadata"

    res = ok(run_module("lxd_storage_pool", {"name": POOL, "state": "absent"}, check=True))
    assert res.changed and lxc_json("/1.0/storage-pools/" + POOL) is not None
    assert ok(run_module("lxd_storage_pool", {"name": POOL, "state": "absent"})).changed
    assert lxc_json("/1.0/storage-pools/" + POOL) is None
    assert not ok(run_module("lxd_storage_pool", {"name": POOL, "state": "absent"})).changed


def test_storage_pool_auto_driver_picks_btrfs_on_a_loop_file(clean):
    """This kernel has btrfs and btrfs-progs is installed, so auto must make a loop-backed btrfs pool."""
    args = {"name": POOL, "driver": "auto", "size": "1GiB"}
    res = ok(run_module("lxd_storage_pool", args, check=True))
    assert res.changed and res["pool"]["driver"] == "btrfs" and "btrfs" in res["driver_reason"]
    res = ok(run_module("lxd_storage_pool", args))
    assert res.changed
    shown = lxc_json("/1.0/storage-pools/" + POOL)
    assert shown["driver"] == "btrfs" and shown["config"]["size"] == "1GiB"
    assert shown["config"]["source"].endswith(".img")  # a loop file
    assert not ok(run_module("lxd_storage_pool", args)).changed
    assert ok(run_module("lxd_storage_pool", {"name": POOL, "state": "absent"})).changed
    assert lxc_json("/1.0/storage-pools/" + POOL) is None


def test_platform_pool_keeps_one_copy_of_its_metadata(platform_config):
    """`lxdctl init` (platform_lxd_pool_metadata_profile: single) left the btrfs pool's metadata
    single, as btrfs itself reports it; asking again changes nothing, and a check-mode run
    towards dup reports the change without making it."""
    pool = platform_config["lxd"]["pool"]
    # the test host has btrfs (test_storage_pool_auto_driver_picks_btrfs_on_a_loop_file), so init chose it
    assert lxc_json("/1.0/storage-pools/" + pool)["driver"] == "btrfs"
    mountpoint = "/var/lib/lxd/storage-pools/" + pool

    def metadata_lines():
        proc = subprocess.run(["btrfs", "filesystem", "df", mountpoint], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if line.startswith("Metadata,")]

    assert [line.split(":")[0] for line in metadata_lines()] == ["Metadata, single"]

    res = ok(run_module("lxd_storage_pool", {"name": pool, "metadata_profile": "single"}, diff=True))
    assert not res.changed and res["metadata_profile"] == "single"
    assert res["diff"]["before"] == res["diff"]["after"]

    res = ok(run_module("lxd_storage_pool", {"name": pool, "metadata_profile": "dup"}, check=True, diff=True))
    assert res.changed and res["diff"]["before"]["metadata_profile"] == "single"
    assert res["diff"]["after"]["metadata_profile"] == "dup"
    assert [line.split(":")[0] for line in metadata_lines()] == ["Metadata, single"]


def test_storage_pool_bad_name_writes_nothing(clean):
    for name in ("It-Pool", "pool;reboot", "../pool"):
        res = run_module("lxd_storage_pool", {"name": name, "driver": "dir"})
        assert res.failed and "name" in res["msg"]
    names = [p["name"] for p in lxc_json("/1.0/storage-pools?recursion=1")]
    assert not [n for n in names if "pool" in n.lower() and n != PLATFORM_POOL]


# --- network ----------------------------------------------------------------------------------


def test_network_lifecycle(clean):
    args = {"name": NETWORK, "ipv4_address": "10.78.9.1/24", "ipv4_nat": False, "ipv6_address": "none"}

    res = ok(run_module("lxd_network", args, check=True, diff=True))
    assert res.changed and res["diff"]["after"]["config"]["ipv4.address"] == "10.78.9.1/24"
    assert lxc_json("/1.0/networks/" + NETWORK) is None

    res = ok(run_module("lxd_network", args))
    assert res.changed and res["subnet"] == "10.78.9.0/24" and res["bridge_address"] == "10.78.9.1"
    shown = lxc("network", "show", NETWORK).stdout
    assert "ipv4.address: 10.78.9.1/24" in shown and 'ipv4.nat: "false"' in shown and "ipv6.address: none" in shown
    assert "10.78.9.1/24" in subprocess.run(["ip", "-4", "addr", "show", NETWORK], capture_output=True, text=True).stdout

    assert not ok(run_module("lxd_network", args)).changed

    modified = dict(args, ipv4_nat=True)
    res = ok(run_module("lxd_network", modified, check=True, diff=True))
    assert res.changed and res["diff"]["before"]["config"]["ipv4.nat"] == "false"
    assert lxc_json("/1.0/networks/" + NETWORK)["config"]["ipv4.nat"] == "false"
    assert ok(run_module("lxd_network", modified)).changed
    assert lxc_json("/1.0/networks/" + NETWORK)["config"]["ipv4.nat"] == "true"
    assert not ok(run_module("lxd_network", modified)).changed

    res = ok(run_module("lxd_network", {"name": NETWORK, "state": "absent"}, check=True))
    assert res.changed and lxc_json("/1.0/networks/" + NETWORK) is not None
    assert ok(run_module("lxd_network", {"name": NETWORK, "state": "absent"})).changed
    assert lxc_json("/1.0/networks/" + NETWORK) is None
    assert not ok(run_module("lxd_network", {"name": NETWORK, "state": "absent"})).changed


@pytest.mark.parametrize("address", ["10.78.9.0/24", "garbage", "10.78.9.1", "10.78.9.1/24;id"])
def test_network_bad_subnet_is_refused_naming_the_setting(clean, address):
    res = run_module("lxd_network", {"name": NETWORK, "ipv4_address": address, "ipv4_nat": False})
    assert res.failed
    assert "platform_lxd_network_address" in res["msg"] and "such as 10." in res["msg"]
    assert lxc_json("/1.0/networks/" + NETWORK) is None


def test_platform_network_is_unchanged():
    net = lxc_json("/1.0/networks/" + PLATFORM_NETWORK)
    args = {"name": PLATFORM_NETWORK, "ipv4_address": net["config"]["ipv4.address"],
            "ipv4_nat": net["config"].get("ipv4.nat") == "true", "ipv6_address": net["config"]["ipv6.address"]}
    res = ok(run_module("lxd_network", args, check=True))
    assert not res.changed and res["bridge_address"] == net["config"]["ipv4.address"].split("/")[0]


# --- profile ------------------------------------------------------------------------------------


PROFILE_ARGS = {
    "name": PROFILE,
    "description": "lxdctl test profile",
    "config": {"security.privileged": False, "security.nesting": "false", "limits.cpu": 1, "limits.memory": "256MiB",
               "limits.processes": "500"},
    "devices": {
        "root": {"type": "disk", "path": "/", "pool": PLATFORM_POOL},
        "eth0": {"type": "nic", "name": "eth0", "network": PLATFORM_NETWORK, "security.port_isolation": True},
    },
}


def test_profile_lifecycle(clean):
    res = ok(run_module("lxd_profile", PROFILE_ARGS, check=True, diff=True))
    assert res.changed and res["diff"]["after"]["config"]["security.privileged"] == "false"
    assert lxc_json("/1.0/profiles/" + PROFILE) is None

    assert ok(run_module("lxd_profile", PROFILE_ARGS)).changed
    shown = lxc_json("/1.0/profiles/" + PROFILE)
    assert shown["config"] == {"security.privileged": "false", "security.nesting": "false", "limits.cpu": "1",
                               "limits.memory": "256MiB", "limits.processes": "500"}
    assert shown["devices"]["eth0"]["security.port_isolation"] == "true"
    assert shown["devices"]["root"] == {"type": "disk", "path": "/", "pool": PLATFORM_POOL}

    assert not ok(run_module("lxd_profile", PROFILE_ARGS, diff=True)).changed

    modified = dict(PROFILE_ARGS, config=dict(PROFILE_ARGS["config"], **{"limits.memory": "512MiB"}))
    res = ok(run_module("lxd_profile", modified, check=True, diff=True))
    assert res.changed and res["diff"]["after"]["config"]["limits.memory"] == "512MiB"
    assert lxc_json("/1.0/profiles/" + PROFILE)["config"]["limits.memory"] == "256MiB"
    assert ok(run_module("lxd_profile", modified)).changed
    assert lxc("profile", "get", PROFILE, "limits.memory").stdout.strip() == "512MiB"
    assert not ok(run_module("lxd_profile", modified)).changed

    # a device added by hand is taken away again: the device set is exact
    lxc("profile", "device", "add", PROFILE, "extra", "none")
    assert ok(run_module("lxd_profile", modified)).changed
    assert "extra" not in lxc_json("/1.0/profiles/" + PROFILE)["devices"]

    res = ok(run_module("lxd_profile", {"name": PROFILE, "state": "absent"}, check=True))
    assert res.changed and lxc_json("/1.0/profiles/" + PROFILE) is not None
    assert ok(run_module("lxd_profile", {"name": PROFILE, "state": "absent"})).changed
    assert lxc_json("/1.0/profiles/" + PROFILE) is None
    assert not ok(run_module("lxd_profile", {"name": PROFILE, "state": "absent"})).changed


def test_platform_profile_is_hardened():
    """What `lxdctl init` (tasks/lxd.yml) left: unprivileged, no nesting, limits, isolated NIC."""
    prof = lxc_json("/1.0/profiles/" + PLATFORM_PROFILE)
    assert prof["config"]["security.privileged"] == "false"
    assert prof["config"]["security.nesting"] == "false"
    for key in ("limits.cpu", "limits.memory", "limits.processes"):
        assert prof["config"][key]
    assert prof["devices"]["root"]["pool"] == PLATFORM_POOL
    assert prof["devices"]["eth0"]["network"] == PLATFORM_NETWORK
    assert prof["devices"]["eth0"]["security.port_isolation"] == "true"


# --- images -------------------------------------------------------------------------------------


def image_show(alias):
    proc = lxc("image", "info", alias, check=False)
    return proc.stdout if proc.returncode == 0 else None


def test_image_build_lifecycle(clean):
    """The smallest real build: a base image from the cached base rootfs (debootstrap when uncached)."""
    args = {"runtime": "base", "alias": IMAGE}

    res = ok(run_module("lxd_image_build", args, check=True, diff=True))
    assert res.changed and res["built"] and image_show(IMAGE) is None

    res = ok(run_module("lxd_image_build", args, timeout=1200))
    assert res.changed and res["built"] and res["fingerprint"]
    print("base image build took %.1fs" % res["build_seconds"])
    info = image_show(IMAGE)
    assert res["fingerprint"] in info and "lxdctl.runtime: base" in info and "lxdctl.build_date:" in info
    first = res["fingerprint"]

    res = ok(run_module("lxd_image_build", args, diff=True))
    assert not res.changed and not res["built"] and res["fingerprint"] == first

    # rebuilt from the cached rootfs (refresh_rootfs false: no second debootstrap in the test run)
    res = ok(run_module("lxd_image_build", dict(args, force=True, refresh_rootfs=False), timeout=1200))
    assert res.changed and res["fingerprint"] != first
    assert res["fingerprint"] in image_show(IMAGE)
    assert lxc("image", "info", first, check=False).returncode != 0  # the old image went with its alias
    assert "lxdctl.recipe: %s" % lxd_image_build.BASE_RECIPE_VERSION in image_show(IMAGE)

    # an image an older lxdctl built (an older recipe) is built again by a plain rerun
    lxc("query", "-X", "PATCH", "/1.0/images/%s" % res["fingerprint"], "--data",
        json.dumps({"properties": {"lxdctl.recipe": "2"}}))
    assert "lxdctl.recipe: 2" in image_show(IMAGE)
    old = res["fingerprint"]
    res = ok(run_module("lxd_image_build", dict(args, refresh_rootfs=False), timeout=1200))
    assert res.changed and res["fingerprint"] != old and "built by recipe 2" in res["rebuilt_because"]
    assert "lxdctl.recipe: %s" % lxd_image_build.BASE_RECIPE_VERSION in image_show(IMAGE)
    assert not ok(run_module("lxd_image_build", args)).changed

    res = ok(run_module("lxd_image_build", dict(args, state="absent"), check=True))
    assert res.changed and image_show(IMAGE) is not None
    assert ok(run_module("lxd_image_build", dict(args, state="absent"))).changed
    assert image_show(IMAGE) is None
    assert not ok(run_module("lxd_image_build", dict(args, state="absent"))).changed


def test_image_build_unreachable_mirror_names_the_setting(clean):
    res = run_module("lxd_image_build", {"runtime": "python", "alias": BAD_IMAGE, "mirror": "http://127.0.0.1:9/debian"})
    assert res.failed and "platform_images_mirror" in res["msg"] and "127.0.0.1:9" in res["msg"]
    assert image_show(BAD_IMAGE) is None


@pytest.mark.parametrize("runtime", ["python", "node", "go"])
def test_runtime_images_exist_and_rerun_is_unchanged(runtime):
    res = ok(run_module("lxd_image_build", {"runtime": runtime}, timeout=1800))
    res = ok(run_module("lxd_image_build", {"runtime": runtime}))
    assert not res.changed
    assert "lxdctl.runtime: %s" % runtime in image_show("lxdctl-" + runtime)


TOOLCHAIN = {
    "python": ("python3 -m venv /tmp/venv && /tmp/venv/bin/python -c 'import sys; print(sys.prefix)'", "/tmp/venv"),
    "node": ("node -e 'console.log(6 * 7)' && npm --version >/dev/null && echo npm-ok", "42\nnpm-ok"),
    "go": ("cd /tmp && printf 'package main\\nimport \"fmt\"\\nfunc main() { fmt.Println(42) }\\n' > m.go"
           " && HOME=/tmp GOCACHE=/tmp/gocache go run m.go", "42"),
}


@pytest.mark.parametrize("runtime", ["python", "node", "go"])
def test_runtime_image_runs_its_toolchain(clean, runtime):
    started = time.monotonic()
    lxc("launch", "lxdctl-" + runtime, CONTAINER, "--profile", PLATFORM_PROFILE)
    address = None
    for _ in range(60):
        state = lxc_json("/1.0/instances/%s/state" % CONTAINER)
        addrs = ((state or {}).get("network") or {}).get("eth0", {}).get("addresses", [])
        address = next((a["address"] for a in addrs if a["family"] == "inet"), None)
        if address:
            break
        time.sleep(0.5)
    print("%s: launch to IPv4 took %.1fs" % (runtime, time.monotonic() - started))
    assert address and address.startswith("10.")
    assert lxc("exec", CONTAINER, "--", "hostname").stdout.strip() == CONTAINER
    assert lxc("exec", CONTAINER, "--", "git", "--version").stdout.startswith("git version")
    command, expected = TOOLCHAIN[runtime]
    assert lxc("exec", CONTAINER, "--", "sh", "-c", command).stdout.strip() == expected
    # light for density: no console getty, a journal of small files
    assert lxc("exec", CONTAINER, "--", "systemctl", "is-enabled", "console-getty.service",
               check=False).stdout.strip() == "masked"
    assert lxc("exec", CONTAINER, "--", "pgrep", "-x", "agetty", check=False).returncode == 1
    journald = lxc("exec", CONTAINER, "--", "systemd-analyze", "cat-config", "systemd/journald.conf").stdout
    assert "SystemMaxFileSize=2M" in journald and "SystemMaxUse=32M" in journald


def test_cli_image_list_and_build_rerun():
    lxdctl = os.path.join(os.path.dirname(sys.executable), "lxdctl")
    listed = json.loads(subprocess.run([lxdctl, "image", "list", "--output", "json"], capture_output=True, text=True,
                                       check=True).stdout)
    aliases = {row["alias"]: row for row in listed}
    for runtime in ("base", "python", "node", "go"):
        assert "lxdctl-" + runtime in aliases
    assert aliases["lxdctl-python"]["runtime"] == "python" and aliases["lxdctl-python"]["size_bytes"] > 0
    proc = subprocess.run([lxdctl, "image", "build"], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "done: 0 changes" in proc.stderr

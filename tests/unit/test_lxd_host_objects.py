"""Unit tests for the LXD host-object modules: validation, diff computation, mirror parsing.

No LXD here: the ``_lxd`` host-object calls are replaced by an in-memory fake.
"""
import os

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.modules import (
    lxd_image_build,
    lxd_network,
    lxd_profile,
    lxd_storage_pool,
)


class FakeModule:
    def __init__(self, params, check_mode=False):
        self.params = params
        self.check_mode = check_mode


class FakeLxd:
    """In-memory stand-in for the ``_lxd`` host-object functions; records every write."""

    def __init__(self, monkeypatch, objects=None, images=None):
        self.objects = objects or {}
        self.images = images or {}
        self.writes = []
        monkeypatch.setattr(_lxd, "get_host_object", self.get)
        monkeypatch.setattr(_lxd, "create_host_object", self.create)
        monkeypatch.setattr(_lxd, "patch_host_object", self.patch)
        monkeypatch.setattr(_lxd, "put_host_object", self.put)
        monkeypatch.setattr(_lxd, "delete_host_object", self.delete)
        monkeypatch.setattr(_lxd, "image_by_alias", lambda client, alias: self.images.get(alias))
        monkeypatch.setattr(_lxd, "delete_image", lambda client, fp: self.writes.append(("delete_image", fp)))

    def get(self, client, kind, name):
        obj = self.objects.get((kind, name))
        return None if obj is None else dict(obj)

    def create(self, client, kind, body):
        self.writes.append(("create", kind, body))
        self.objects[(kind, body["name"])] = dict(body, used_by=[])

    def patch(self, client, kind, name, body):
        self.writes.append(("patch", kind, name, body))
        obj = self.objects[(kind, name)]
        obj["config"] = dict(obj.get("config") or {}, **body.get("config", {}))
        if "description" in body:
            obj["description"] = body["description"]

    def put(self, client, kind, name, body):
        self.writes.append(("put", kind, name, body))
        self.objects[(kind, name)].update(body)

    def delete(self, client, kind, name):
        self.writes.append(("delete", kind, name))
        del self.objects[(kind, name)]


def params(spec_func, **values):
    """Module params with the argspec's defaults filled in."""
    spec = spec_func()
    result = {key: opts.get("default") for key, opts in spec.items()}
    result.update(values)
    return result


# --- argument validation ----------------------------------------------------------------


@pytest.mark.parametrize("value,expected", [("10.77.0.1/24", "10.77.0.1/24"), ("10.78.9.1/24", "10.78.9.1/24"),
                                            ("192.168.50.254/24", "192.168.50.254/24"), ("172.16.0.1/12", "172.16.0.1/12")])
def test_bridge_ipv4_accepts_an_address_with_prefix(value, expected):
    assert _lxd.bridge_ipv4(value) == expected


def test_bridge_ipv4_refuses_the_network_address_naming_the_variable():
    with pytest.raises(ValidationError) as err:
        _lxd.bridge_ipv4("10.77.0.0/24")
    assert "platform_lxd_network_address" in err.value.msg
    assert "network address" in err.value.msg
    assert "10.77.0.1/24" in err.value.msg  # says how to fix it


@pytest.mark.parametrize("value", ["garbage", "10.77.0.1", "10.77.0.255/24", "10.77.0.1/31", "10.77.0.1/4",
                                   "300.1.1.1/24", "127.0.0.1/8", "10.77.0.1/24; rm -rf /", "", None, "fd42::1/64"])
def test_bridge_ipv4_refuses_bad_values(value):
    with pytest.raises(ValidationError) as err:
        _lxd.bridge_ipv4(value)
    assert err.value.msg.startswith("ipv4_address (platform_lxd_network_address)")


def test_bridge_ipv4_argspec_raises_value_error_for_ansible():
    with pytest.raises(ValueError):
        _lxd.argspec_bridge_ipv4("10.77.0.0/24")


@pytest.mark.parametrize("value", ["none", "auto", "fd42:77::1/64"])
def test_bridge_ipv6_accepts(value):
    assert _lxd.bridge_ipv6(value) == value


@pytest.mark.parametrize("value", ["fd42:77::/64", "fd42::1", "10.0.0.1/24", "yes"])
def test_bridge_ipv6_refuses(value):
    with pytest.raises(ValidationError) as err:
        _lxd.bridge_ipv6(value)
    assert "platform_lxd_network_ipv6" in err.value.msg


@pytest.mark.parametrize("value", ["lxdctlbr0", "it-hostobj-br", "a"])
def test_network_name_accepts(value):
    assert _lxd.network_name(value) == value


@pytest.mark.parametrize("value", ["Br0", "br0;reboot", "br/0", "a-very-long-bridge-name", "0br", "br-", ""])
def test_network_name_refuses(value):
    with pytest.raises(ValidationError):
        _lxd.network_name(value)


@pytest.mark.parametrize("value", ["lxdctl", "it-hostobj-pool", "pool_1", "a.b"])
def test_object_name_accepts(value):
    assert _lxd.object_name(value) == value


@pytest.mark.parametrize("value", ["Pool", "pool name", "../etc", "pool$(x)", "-x", "x" * 64])
def test_object_name_refuses(value):
    with pytest.raises(ValidationError):
        _lxd.object_name(value)


@pytest.mark.parametrize("value", ["lxdctl-python", "it-hostobj-img", "a"])
def test_image_alias_accepts(value):
    assert lxd_image_build.argspec_alias(value) == value


@pytest.mark.parametrize("value", ["Lxdctl", "x y", "a/b", "a;b", "-a", ""])
def test_image_alias_refuses(value):
    with pytest.raises(ValueError):
        lxd_image_build.argspec_alias(value)


@pytest.mark.parametrize("value", ["http://deb.debian.org/debian", "https://mirror.example.com:8443/debian/",
                                   "file:///srv/mirror/debian"])
def test_mirror_syntax_accepts(value):
    assert lxd_image_build.check_mirror_syntax(value) == value.rstrip("/")


@pytest.mark.parametrize("value", ["deb.debian.org/debian", "ftp://x/debian", "http://x/deb ian", "http://x/;rm",
                                   "http://x/$(id)", "http://x/debian\nbookworm"])
def test_mirror_syntax_refuses_naming_the_variable(value):
    with pytest.raises(LxdctlError) as err:
        lxd_image_build.check_mirror_syntax(value)
    assert "platform_images_mirror" in err.value.msg


# --- diff computation ---------------------------------------------------------------------


def test_config_changes_compares_as_lxd_strings():
    current = {"limits.cpu": "2", "security.nesting": "false", "volatile.x": "1"}
    assert _lxd.config_changes(current, {"limits.cpu": 2, "security.nesting": False}) == {}
    assert _lxd.config_changes(current, {"limits.cpu": "4"}) == {"limits.cpu": "4"}
    assert _lxd.config_changes(current, {"new.key": True}) == {"new.key": "true"}
    assert _lxd.config_changes(current, {"volatile.x": None, "absent.key": None}) == {"volatile.x": None}


def test_profile_desired_merges_config_and_replaces_devices():
    current = {"name": "p", "description": "", "config": {"limits.cpu": "2", "user.x": "1"},
               "devices": {"root": {"type": "disk", "path": "/", "pool": "lxdctl"}, "extra": {"type": "none"}}}
    wanted_devices = {"root": {"type": "disk", "path": "/", "pool": "lxdctl"}}
    after, changed = lxd_profile.desired(current, {"name": "p", "config": {"limits.cpu": 2}, "devices": wanted_devices,
                                                   "description": None})
    assert changed
    assert after["config"] == {"limits.cpu": "2", "user.x": "1"}
    assert after["devices"] == wanted_devices

    same, changed = lxd_profile.desired(after, {"name": "p", "config": {"limits.cpu": "2"}, "devices": None,
                                                "description": None})
    assert not changed and same == after


def test_profile_desired_bool_device_property_equals_lxd_string():
    current = {"name": "p", "description": "d", "config": {},
               "devices": {"eth0": {"type": "nic", "network": "br", "security.port_isolation": "true"}}}
    _after, changed = lxd_profile.desired(current, {
        "name": "p", "config": {}, "description": "d",
        "devices": {"eth0": {"type": "nic", "network": "br", "security.port_isolation": True}}})
    assert not changed


def test_profile_device_without_type_is_refused():
    with pytest.raises(LxdctlError, match="devices.eth0"):
        lxd_profile.desired({}, {"name": "p", "config": {}, "devices": {"eth0": {"network": "br"}}, "description": None})


def test_network_wanted_config():
    wanted = lxd_network.wanted_config({"ipv4_address": "10.78.9.1/24", "ipv4_nat": False, "ipv6_address": "none",
                                        "config": {"ipv4.dhcp": True}})
    assert wanted == {"ipv4.address": "10.78.9.1/24", "ipv4.nat": "false", "ipv6.address": "none", "ipv4.dhcp": "true"}
    with pytest.raises(ValidationError, match="config.ipv4.address"):
        lxd_network.wanted_config({"config": {"ipv4.address": "10.78.9.0/24"}})


def test_network_service_changes_only_what_differs(monkeypatch):
    fake = FakeLxd(monkeypatch, {("network", "br"): {
        "name": "br", "type": "bridge", "managed": True, "description": "",
        "config": {"ipv4.address": "10.78.9.1/24", "ipv4.nat": "false", "ipv6.address": "none"}, "used_by": []}})
    same = params(lxd_network.argument_spec, name="br", ipv4_address="10.78.9.1/24", ipv4_nat=False, ipv6_address="none")
    result = lxd_network.NetworkService(FakeModule(same), None).run()
    assert not result["changed"] and fake.writes == []
    assert result["subnet"] == "10.78.9.0/24" and result["bridge_address"] == "10.78.9.1"

    nat = dict(same, ipv4_nat=True)
    result = lxd_network.NetworkService(FakeModule(nat, check_mode=True), None).run()
    assert result["changed"] and fake.writes == []
    assert result["diff"]["after"]["config"]["ipv4.nat"] == "true"
    result = lxd_network.NetworkService(FakeModule(nat), None).run()
    assert fake.writes == [("patch", "network", "br", {"config": {"ipv4.nat": "true"}})]


def test_network_create_needs_an_address(monkeypatch):
    FakeLxd(monkeypatch)
    with pytest.raises(LxdctlError, match="platform_lxd_network_address"):
        lxd_network.NetworkService(FakeModule(params(lxd_network.argument_spec, name="br")), None).run()


def test_network_in_use_is_not_deleted(monkeypatch):
    fake = FakeLxd(monkeypatch, {("network", "br"): {"name": "br", "type": "bridge", "managed": True,
                                                     "config": {}, "used_by": ["/1.0/profiles/p"]}})
    with pytest.raises(LxdctlError, match="used by /1.0/profiles/p"):
        lxd_network.NetworkService(FakeModule(params(lxd_network.argument_spec, name="br", state="absent"),
                                              check_mode=True), None).run()
    assert fake.writes == []


def test_pool_auto_driver_uses_detection(monkeypatch):
    fake = FakeLxd(monkeypatch)
    p = params(lxd_storage_pool.argument_spec, name="pool", size="5GiB")
    result = lxd_storage_pool.StoragePoolService(FakeModule(p), None, detect=lambda: (False, "no btrfs")).run()
    assert result["changed"] and result["driver_reason"] == "no btrfs"
    assert fake.writes[0][2]["driver"] == "dir" and "size" not in fake.writes[0][2]["config"]

    fake2 = FakeLxd(monkeypatch)
    result = lxd_storage_pool.StoragePoolService(FakeModule(p), None, detect=lambda: (True, "btrfs ok")).run()
    assert fake2.writes[0][2]["driver"] == "btrfs" and fake2.writes[0][2]["config"] == {"size": "5GiB"}


def test_pool_existing_is_adopted_and_size_not_compared(monkeypatch):
    fake = FakeLxd(monkeypatch, {("storage pool", "lxdctl"): {
        "name": "lxdctl", "driver": "btrfs", "description": "",
        "config": {"size": "30GiB", "source": "/var/lib/lxd/disks/lxdctl.img"}, "used_by": []}})
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", size="20GiB")
    result = lxd_storage_pool.StoragePoolService(FakeModule(p), None, detect=lambda: (False, "")).run()
    assert not result["changed"] and fake.writes == []
    with pytest.raises(LxdctlError, match="cannot change to dir"):
        lxd_storage_pool.StoragePoolService(FakeModule(dict(p, driver="dir")), None).run()


def test_btrfs_support_reads_proc_filesystems(tmp_path, monkeypatch):
    monkeypatch.setattr(lxd_storage_pool.shutil, "which", lambda name: "/sbin/" + name)
    listed = tmp_path / "filesystems"
    listed.write_text("nodev\tsysfs\n\text4\n\tbtrfs\n")
    assert lxd_storage_pool.btrfs_support(str(listed), load=False)[0] is True
    listed.write_text("nodev\tsysfs\n\text4\n")
    assert lxd_storage_pool.btrfs_support(str(listed), load=False)[0] is False
    monkeypatch.setattr(lxd_storage_pool.shutil, "which", lambda name: None)
    usable, reason = lxd_storage_pool.btrfs_support(str(listed), load=False)
    assert not usable and "btrfs-progs" in reason



# --- btrfs metadata profile of the pool ---------------------------------------------------------

DF_SINGLE = """\
Data, single: total=3.00GiB, used=1.74GiB
System, single: total=32.00MiB, used=16.00KiB
Metadata, single: total=768.00MiB, used=118.83MiB
GlobalReserve, single: total=20.31MiB, used=0.00B
"""

DF_DUP = """\
Data, single: total=3.00GiB, used=1.74GiB
System, DUP: total=8.00MiB, used=16.00KiB
Metadata, DUP: total=768.00MiB, used=169.61MiB
GlobalReserve, single: total=20.31MiB, used=0.00B
"""


def test_btrfs_metadata_profile_parses_filesystem_df():
    assert lxd_storage_pool.btrfs_metadata_profile(DF_SINGLE) == "single"
    assert lxd_storage_pool.btrfs_metadata_profile(DF_DUP) == "dup"
    # a conversion cut short: chunks of both profiles, which is neither
    both = DF_DUP + "Metadata, single: total=256.00MiB, used=12.00MiB\n"
    assert lxd_storage_pool.btrfs_metadata_profile(both) == "dup+single"
    # an empty chunk of the old profile does not count
    assert lxd_storage_pool.btrfs_metadata_profile(DF_SINGLE + "Metadata, DUP: total=0.00B, used=0.00B\n") == "single"
    assert lxd_storage_pool.btrfs_metadata_profile("Data, single: total=1.00GiB, used=0.00B\n") is None


class BtrfsModule(FakeModule):
    """A module whose ``run_command`` plays ``btrfs``: ``df`` shows the current profile,
    ``balance`` converts it; every argv is recorded."""

    def __init__(self, params, check_mode=False, profile="dup"):
        super().__init__(params, check_mode)
        self.profile = profile
        self.commands = []

    def run_command(self, argv):
        assert isinstance(argv, list)
        self.commands.append(argv)
        if argv[:3] == ["btrfs", "filesystem", "df"]:
            return 0, DF_DUP if self.profile == "dup" else DF_SINGLE, ""
        if argv[:3] == ["btrfs", "balance", "start"]:
            self.profile = argv[4].split("=")[1]
            return 0, "Done, had to relocate 3 out of 9 chunks\n", ""
        return 1, "", "unexpected command"


SOCKET = "unix:///srv/lxd/unix.socket"
MOUNTPOINT = "/srv/lxd/storage-pools/lxdctl"
BTRFS_POOL = {("storage pool", "lxdctl"): {
    "name": "lxdctl", "driver": "btrfs", "description": "",
    "config": {"size": "30GiB", "source": "/srv/lxd/disks/lxdctl.img"}, "used_by": []}}


def pool_service(module, mounted=(MOUNTPOINT,)):
    return lxd_storage_pool.StoragePoolService(module, None, detect=lambda: (True, "btrfs ok"),
                                               ismount=lambda path: path in mounted)


def test_pool_metadata_is_converted_when_it_differs(monkeypatch):
    fake = FakeLxd(monkeypatch, dict(BTRFS_POOL))
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p)
    result = pool_service(module).run()
    assert result["changed"] and result["metadata_profile"] == "single"
    assert result["diff"]["before"]["metadata_profile"] == "dup"
    assert result["diff"]["after"]["metadata_profile"] == "single"
    assert module.commands == [
        ["btrfs", "filesystem", "df", MOUNTPOINT],
        ["btrfs", "balance", "start", "-f", "-mconvert=single", "-sconvert=single", MOUNTPOINT],
        ["btrfs", "filesystem", "df", MOUNTPOINT],
    ]
    assert fake.writes == []  # the LXD object itself is unchanged
    assert "metadata_profile" not in result["pool"]

    # back to dup, the btrfs default
    module = BtrfsModule(dict(p, metadata_profile="dup"), profile="single")
    result = pool_service(module).run()
    assert result["changed"] and result["metadata_profile"] == "dup"
    assert ["btrfs", "balance", "start", "-f", "-mconvert=dup", "-sconvert=dup", MOUNTPOINT] in module.commands


def test_pool_metadata_check_mode_reports_the_change_without_balance(monkeypatch):
    FakeLxd(monkeypatch, dict(BTRFS_POOL))
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p, check_mode=True)
    result = pool_service(module).run()
    assert result["changed"] and result["metadata_profile"] == "single"
    assert result["diff"]["before"]["metadata_profile"] == "dup"
    assert result["diff"]["after"]["metadata_profile"] == "single"
    assert module.commands == [["btrfs", "filesystem", "df", MOUNTPOINT]]


def test_pool_metadata_equal_is_unchanged(monkeypatch):
    fake = FakeLxd(monkeypatch, dict(BTRFS_POOL))
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p, profile="single")
    result = pool_service(module).run()
    assert not result["changed"] and result["metadata_profile"] == "single"
    assert result["diff"]["before"] == result["diff"]["after"]
    assert module.commands == [["btrfs", "filesystem", "df", MOUNTPOINT]] and fake.writes == []

    # left alone when not asked for
    module = BtrfsModule(dict(p, metadata_profile=None))
    result = pool_service(module).run()
    assert not result["changed"] and module.commands == [] and "metadata_profile" not in result


def test_pool_metadata_on_a_new_btrfs_pool(monkeypatch):
    fake = FakeLxd(monkeypatch)
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", size="30GiB", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p, check_mode=True)
    result = pool_service(module).run()  # nothing to read before the pool exists
    assert result["changed"] and result["metadata_profile"] == "single" and module.commands == []
    assert result["diff"]["after"]["metadata_profile"] == "single" and fake.writes == []

    module = BtrfsModule(p)
    result = pool_service(module).run()
    assert result["changed"] and result["metadata_profile"] == "single"
    assert fake.writes[0][0] == "create" and len(module.commands) == 3


def test_pool_metadata_is_skipped_for_a_dir_pool(monkeypatch):
    FakeLxd(monkeypatch, {("storage pool", "scratch"): {
        "name": "scratch", "driver": "dir", "description": "", "config": {"source": "/srv/lxd/x"}, "used_by": []}})
    p = params(lxd_storage_pool.argument_spec, name="scratch", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p)
    result = pool_service(module, mounted=()).run()
    assert not result["changed"] and module.commands == []
    assert result["metadata_profile_skipped"] == "dir pools have no btrfs metadata"
    assert "metadata_profile" not in result


def test_pool_metadata_unmounted_pool_fails_naming_the_path(monkeypatch):
    FakeLxd(monkeypatch, dict(BTRFS_POOL))
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p)
    with pytest.raises(LxdctlError) as err:
        pool_service(module, mounted=()).run()
    assert MOUNTPOINT in err.value.msg and "not mounted" in err.value.msg
    assert module.commands == []


def test_pool_mountpoint_follows_the_socket():
    assert lxd_storage_pool.pool_mountpoint({"lxd_url": "unix:///var/lib/lxd/unix.socket"}, "lxdctl") == \
        "/var/lib/lxd/storage-pools/lxdctl"
    assert lxd_storage_pool.pool_mountpoint({"lxd_url": "https://127.0.0.1:8443"}, "lxdctl") is None


def test_pool_metadata_of_a_remote_lxd_is_left_alone(monkeypatch):
    FakeLxd(monkeypatch, dict(BTRFS_POOL))
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", metadata_profile="single",
               lxd_url="https://lxd.example.com:8443")
    module = BtrfsModule(p)
    result = pool_service(module, mounted=()).run()
    assert not result["changed"] and module.commands == []
    assert "remote LXD" in result["metadata_profile_skipped"] and "metadata_profile" not in result


def test_pool_btrfs_failure_is_reported(monkeypatch):
    FakeLxd(monkeypatch, dict(BTRFS_POOL))
    p = params(lxd_storage_pool.argument_spec, name="lxdctl", metadata_profile="single", lxd_url=SOCKET)
    module = BtrfsModule(p)
    module.run_command = lambda argv: (1, "", "ERROR: not a btrfs filesystem")
    with pytest.raises(LxdctlError, match="not a btrfs filesystem"):
        pool_service(module).run()


def test_pool_documented_options_match_argument_spec():
    import yaml

    doc = yaml.safe_load(lxd_storage_pool.DOCUMENTATION)
    assert set(doc["options"]) | set(_lxd.CONNECTION_ARGSPEC) == set(lxd_storage_pool.argument_spec())
    assert doc["options"]["metadata_profile"]["choices"] == ["single", "dup"]
    yaml.safe_load(lxd_storage_pool.EXAMPLES)
    assert {"metadata_profile", "metadata_profile_skipped"} <= set(yaml.safe_load(lxd_storage_pool.RETURN))

CURRENT_RECIPE = {"lxdctl.recipe": lxd_image_build.BASE_RECIPE_VERSION}


def test_image_service_exists_is_unchanged_and_check_mode_does_not_build(monkeypatch):
    fake = FakeLxd(monkeypatch, images={"lxdctl-python": {"fingerprint": "abc", "aliases": ["lxdctl-python"],
                                                          "properties": CURRENT_RECIPE}})
    monkeypatch.setattr(lxd_image_build.ImageBuilder, "build", lambda *a, **k: pytest.fail("must not build"))
    p = params(lxd_image_build.argument_spec, runtime="python")
    result = lxd_image_build.ImageService(FakeModule(p), None).run()
    assert not result["changed"] and result["fingerprint"] == "abc" and "python3-venv" in result["packages"]
    result = lxd_image_build.ImageService(FakeModule(dict(p, runtime="go"), check_mode=True), None).run()
    assert result["changed"] and result["built"] and result["alias"] == "lxdctl-go"
    result = lxd_image_build.ImageService(FakeModule(dict(p, force=True), check_mode=True), None).run()
    assert result["changed"]
    result = lxd_image_build.ImageService(FakeModule(dict(p, state="absent"), check_mode=True), None).run()
    assert result["changed"] and fake.writes == []


def test_an_image_of_an_older_recipe_is_rebuilt_unless_it_came_from_a_server(monkeypatch):
    FakeLxd(monkeypatch, images={"lxdctl-python": {"fingerprint": "abc", "aliases": ["lxdctl-python"],
                                                   "properties": {"lxdctl.runtime": "python"}}})
    monkeypatch.setattr(lxd_image_build.ImageBuilder, "build", lambda *a, **k: pytest.fail("must not build"))
    p = params(lxd_image_build.argument_spec, runtime="python")
    result = lxd_image_build.ImageService(FakeModule(p, check_mode=True), None).run()
    assert result["changed"] and result["built"]
    assert "recipe 1-2" in result["rebuilt_because"] and lxd_image_build.BASE_RECIPE_VERSION in result["rebuilt_because"]
    served = dict(p, server="https://images.example.com", server_alias="python")
    result = lxd_image_build.ImageService(FakeModule(served, check_mode=True), None).run()
    assert not result["changed"] and "rebuilt_because" not in result


def test_the_rootfs_is_cleaned_and_made_light(tmp_path):
    rootfs = tmp_path / "rootfs"
    for path in ("etc/systemd/system", "var/lib/dbus", "var/log"):
        (rootfs / path).mkdir(parents=True)
    (rootfs / "etc" / "resolv.conf").write_text("nameserver 10.0.0.1\n")
    (rootfs / "var" / "log" / "dpkg.log").write_text("installed\n")
    lxd_image_build.ImageBuilder.cleanup_rootfs(str(rootfs))
    for unit in ("console-getty.service", "systemd-binfmt.service"):
        assert os.readlink(str(rootfs / "etc" / "systemd" / "system" / unit)) == "/dev/null"
    journald = (rootfs / "etc" / "systemd" / "journald.conf.d" / "lxdctl.conf").read_text()
    assert "SystemMaxFileSize=2M" in journald and "SystemMaxUse=32M" in journald and "[Journal]" in journald
    assert not (rootfs / "etc" / "resolv.conf").exists() and not (rootfs / "var" / "log" / "dpkg.log").exists()
    assert (rootfs / "etc" / "machine-id").read_text() == ""
    lxd_image_build.ImageBuilder.cleanup_rootfs(str(rootfs))  # a second run changes nothing and does not fail


# --- mirror parsing -------------------------------------------------------------------------


ONE_LINE = """\
# a comment
deb-src http://deb.debian.org/debian bookworm main
deb [arch=amd64 signed-by=/usr/share/keyrings/x.gpg] http://mirror.example.com/debian/ bookworm main contrib
deb http://security.debian.org/debian-security bookworm-security main
"""

DEB822 = """\
Types: deb deb-src
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb
Enabled: no
URIs: http://disabled.example.com/debian
Suites: bookworm
Components: main
"""


def test_parse_one_line_sources():
    assert lxd_image_build.parse_one_line_sources(ONE_LINE) == [
        ("http://mirror.example.com/debian/", "bookworm", ("main", "contrib")),
        ("http://security.debian.org/debian-security", "bookworm-security", ("main",)),
    ]


def test_parse_deb822_sources():
    entries = lxd_image_build.parse_deb822_sources(DEB822)
    assert ("http://deb.debian.org/debian", "bookworm", ("main",)) in entries
    assert ("http://deb.debian.org/debian", "bookworm-updates", ("main",)) in entries
    assert not [e for e in entries if "disabled" in e[0]]
    assert lxd_image_build.mirror_from_sources(entries, "bookworm") == "http://deb.debian.org/debian"


def test_host_sources_reads_both_formats(tmp_path):
    apt = tmp_path / "etc" / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "debian.sources").write_text(DEB822)
    (apt / "sources.list.d" / "other.list.disabled").write_text("deb http://ignored/debian bookworm main\n")
    assert lxd_image_build.resolve_mirror("", "bookworm", root=str(tmp_path)) == "http://deb.debian.org/debian"
    (apt / "sources.list").write_text(ONE_LINE)  # sources.list comes first, like apt
    assert lxd_image_build.resolve_mirror("", "bookworm", root=str(tmp_path)) == "http://mirror.example.com/debian"
    # an explicit mirror wins
    assert lxd_image_build.resolve_mirror("http://x.example/debian/", "bookworm", root=str(tmp_path)) == \
        "http://x.example/debian"


def test_no_mirror_in_sources_names_the_variable(tmp_path):
    (tmp_path / "etc" / "apt").mkdir(parents=True)
    with pytest.raises(LxdctlError) as err:
        lxd_image_build.resolve_mirror("", "bookworm", root=str(tmp_path))
    assert "platform_images_mirror" in err.value.msg


def test_unreachable_mirror_names_the_variable():
    # port 9 (discard) on loopback: nothing listens, the connection is refused at once
    with pytest.raises(LxdctlError) as err:
        lxd_image_build.check_mirror_reachable("http://127.0.0.1:9/debian", "bookworm", timeout=5)
    assert "platform_images_mirror" in err.value.msg and "127.0.0.1:9" in err.value.msg


def test_missing_file_mirror_names_the_variable(tmp_path):
    with pytest.raises(LxdctlError, match="platform_images_mirror"):
        lxd_image_build.check_mirror_reachable("file://%s" % tmp_path, "bookworm")


# --- CLI --------------------------------------------------------------------------------------


def test_cli_build_extravars():
    from lxdctl.commands.image import build_extravars

    assert build_extravars((), False) == {"platform_images_force": False}
    assert build_extravars(("python", "python", "go"), True) == {
        "platform_images_force": True, "platform_images_runtimes": ["python", "go"],
        "_platform_images_force_base": False}
    assert build_extravars(("base",), True)["_platform_images_force_base"] is True
    assert build_extravars(("base",), True)["platform_images_runtimes"] == []


def test_cli_image_rows():
    from lxdctl.commands.image import image_rows

    rows = image_rows([
        {"fingerprint": "f" * 64, "size": 300 * 1024 * 1024, "created_at": "2026-01-01T00:00:00Z",
         "properties": {"lxdctl.runtime": "python", "lxdctl.build_date": "2026-01-02T00:00:00Z"},
         "aliases": ["lxdctl-python"]},
        {"fingerprint": "e" * 64, "size": 10, "created_at": "x", "properties": {}, "aliases": ["other"]},
    ])
    assert rows == [{"alias": "lxdctl-python", "runtime": "python", "size": "300.0MiB", "size_bytes": 314572800,
                     "created": "2026-01-02T00:00:00Z", "fingerprint": "f" * 12}]


def test_playbook_and_tasks_exist():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    for rel in ("playbooks/image_build.yml", "roles/platform/tasks/images.yml", "roles/platform/tasks/lxd.yml"):
        assert os.path.isfile(os.path.join(root, rel)), rel


def test_image_force_refreshes_the_rootfs_only_for_base_unless_told(monkeypatch):
    FakeLxd(monkeypatch, images={"lxdctl-base": {"fingerprint": "a", "aliases": ["lxdctl-base"]},
                                 "lxdctl-go": {"fingerprint": "b", "aliases": ["lxdctl-go"]}})
    calls = []
    monkeypatch.setattr(lxd_image_build.ImageBuilder, "build",
                        lambda self, client, runtime, alias, mirror, force_base=False: calls.append(force_base) or "new")
    monkeypatch.setattr(lxd_image_build, "resolve_mirror", lambda mirror, suite: "http://deb.debian.org/debian")
    p = params(lxd_image_build.argument_spec, force=True)
    for values in ({"runtime": "base"}, {"runtime": "go"}, {"runtime": "base", "refresh_rootfs": False},
                   {"runtime": "go", "refresh_rootfs": True}):
        result = lxd_image_build.ImageService(FakeModule(dict(p, **values)), None).run()
        assert result["changed"] and result["fingerprint"] == "new"
    assert calls == [True, False, False, True]

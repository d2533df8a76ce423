"""lxd_instance, lxd_file and the projects inventory: argument validation and the pure diff logic."""
import pytest

from ansible_collections.lxdctl.platform.plugins.inventory import projects
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd, _names
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import ValidationError
from ansible_collections.lxdctl.platform.plugins.modules import lxd_file, lxd_instance


def _params(**overrides):
    params = dict(image="lxdctl-base", image_server=None, pool=None, profiles=None, config=None, devices=None,
                  timeout=60)
    params.update(overrides)
    return params


def _current(**overrides):
    current = dict(name="it", status="Running", type="container", profiles=["lxdctl"],
                   config={"limits.memory": "256MiB", "user.lxdctl.project": "it"},
                   devices={"root": {"type": "disk", "path": "/", "pool": "lxdctl"}})
    current.update(overrides)
    return current


# --- names --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["a", "it-inst-1", "lxdctl-myapp", "a" * 63])
def test_valid_instance_names(name):
    assert _names.instance_name(name) == name


@pytest.mark.parametrize("name", ["", "It-Inst", "a;rm -rf /", "a/b", "../x", "a" * 64, "x$(id)", "a b", "-a",
                                  "a-", "a--b", "1abc", "a\n", "a|b", "a`b`"])
def test_invalid_instance_names(name):
    with pytest.raises(ValidationError) as err:
        _names.argspec_instance_name(name)
    assert "lowercase letters" in str(err.value)


# --- config / devices validation ----------------------------------------------------------
def test_config_values_become_strings():
    got = lxd_instance.normalize_config({"limits.cpu": 2, "security.nesting": False, "user.lxdctl.Project": "x",
                                         "environment.APP_ENV": "prod"})
    assert got == {"limits.cpu": "2", "security.nesting": "false", "user.lxdctl.Project": "x",
                   "environment.APP_ENV": "prod"}


@pytest.mark.parametrize("key", ["raw.lxc", "raw.idmap", "volatile.eth0.hwaddr", "image.os", "nope", "limits.Memory",
                                 "limits.memory;id", "user.a b", "", "Limits.cpu"])
def test_config_keys_refused(key):
    with pytest.raises(ValidationError):
        lxd_instance.normalize_config({key: "1"})


@pytest.mark.parametrize("value", ["a\nb", "x\x00", ["list"], {"a": 1}, 1.5])
def test_config_values_refused(value):
    with pytest.raises(ValidationError):
        lxd_instance.normalize_config({"user.label": value})


def test_devices_validated():
    got = lxd_instance.normalize_devices({"eth0": {"type": "nic", "network": "lxdctlbr0",
                                                   "security.port_isolation": True}})
    assert got == {"eth0": {"type": "nic", "network": "lxdctlbr0", "security.port_isolation": "true"}}
    for bad in ({"eth0": {"network": "x"}}, {"eth0": {"type": "bogus"}}, {"a/b": {"type": "nic"}},
                {"eth0": "nic"}, {"eth0": {"type": "nic", "Bad Key": "1"}}):
        with pytest.raises(ValidationError):
            lxd_instance.normalize_devices(bad)


@pytest.mark.parametrize("overrides", [
    dict(image="base; rm -rf /"), dict(image="../../etc"), dict(image_server="http://images.example.com"),
    dict(image_server="https://x.example.com/$(id)"), dict(pool="a/b"), dict(profiles=["ok", "b;c"]),
    dict(timeout=0), dict(timeout=99999),
])
def test_validate_params_refuses(overrides):
    with pytest.raises(ValidationError):
        lxd_instance.validate_params(_params(**overrides))


def test_argument_spec_merges_connection_options():
    spec = lxd_instance.argument_spec()
    assert set(_lxd.CONNECTION_ARGSPEC) <= set(spec)
    assert spec["name"]["type"] is _names.argspec_instance_name
    assert lxd_file.argument_spec()["content"]["no_log"] is True


def test_image_source_local_and_remote():
    assert lxd_instance.image_source(_params()) == {"type": "image", "alias": "lxdctl-base"}
    remote = lxd_instance.image_source(_params(image="debian/12", image_server="https://images.example.com",
                                               image_protocol="simplestreams"))
    assert remote == {"type": "image", "alias": "debian/12", "mode": "pull",
                      "server": "https://images.example.com", "protocol": "simplestreams"}


# --- plan (the diff) ------------------------------------------------------------------------
def test_plan_create_started():
    steps = lxd_instance.plan(None, "started", config={"user.a": "1"}, profiles=["lxdctl"], pool="lxdctl")
    assert steps["create"] and steps["power"] == "start" and not steps["update"]
    assert steps["before"] == {}
    assert steps["after"]["devices"] == {"root": {"type": "disk", "path": "/", "pool": "lxdctl"}}
    assert steps["after"]["status"] == "Running"
    assert lxd_instance.is_changed(steps)


def test_plan_present_creates_stopped():
    steps = lxd_instance.plan(None, "present")
    assert steps["create"] and steps["power"] is None and steps["after"]["status"] == "Stopped"
    assert steps["after"]["profiles"] == ["default"]


def test_plan_same_settings_unchanged():
    cur = _current()
    steps = lxd_instance.plan(cur, "started", config=dict(cur["config"]), devices=dict(cur["devices"]),
                              profiles=["lxdctl"], pool="lxdctl")
    assert not lxd_instance.is_changed(steps)
    assert steps["before"] == steps["after"]


def test_plan_omitted_settings_are_left_alone():
    steps = lxd_instance.plan(_current(), "present")
    assert not lxd_instance.is_changed(steps)


def test_plan_config_is_exact():
    cur = _current()
    steps = lxd_instance.plan(cur, "started", config={"limits.memory": "512MiB"})
    assert steps["update"] and steps["power"] is None
    assert steps["after"]["config"] == {"limits.memory": "512MiB"}  # the label goes: exact
    assert steps["before"]["config"] == cur["config"]


def test_plan_devices_and_profiles_exact():
    assert lxd_instance.plan(_current(), "started", devices={})["update"]
    assert lxd_instance.plan(_current(), "started", profiles=["default", "lxdctl"])["update"]
    assert lxd_instance.plan(_current(), "started", profiles=["lxdctl"])["update"] is False


@pytest.mark.parametrize("state,status,power", [
    ("started", "Running", None), ("started", "Stopped", "start"), ("stopped", "Running", "stop"),
    ("stopped", "Stopped", None), ("restarted", "Running", "restart"), ("restarted", "Stopped", "start"),
    ("present", "Running", None), ("present", "Stopped", None),
])
def test_plan_power(state, status, power):
    steps = lxd_instance.plan(_current(status=status), state)
    assert steps["power"] == power
    assert lxd_instance.is_changed(steps) == (power is not None)


def test_plan_absent():
    assert lxd_instance.plan(_current(), "absent")["delete"]
    steps = lxd_instance.plan(None, "absent")
    assert not lxd_instance.is_changed(steps) and steps["before"] == steps["after"] == {}


# --- what LXD reports -----------------------------------------------------------------------
def test_volatile_and_image_keys_ignored():
    record = {"name": "x", "status": "Running", "type": "container", "profiles": ["lxdctl"], "devices": {},
              "config": {"volatile.eth0.hwaddr": "00:16:3e:00:00:01", "image.os": "debian", "limits.cpu": "1"}}
    assert _lxd.instance_summary(record)["config"] == {"limits.cpu": "1"}
    assert _lxd.instance_summary(None) is None


def test_addresses_from_state_global_only():
    state = {"network": {
        "lo": {"type": "loopback", "addresses": [{"family": "inet", "address": "127.0.0.1", "scope": "local"}]},
        "eth0": {"type": "broadcast", "addresses": [
            {"family": "inet", "address": "10.77.0.5", "scope": "global"},
            {"family": "inet6", "address": "fe80::1", "scope": "link"},
            {"family": "inet6", "address": "fd00::5", "scope": "global"}]}}}
    assert _lxd.addresses_from_state(state) == {"ipv4": ["10.77.0.5"], "ipv6": ["fd00::5"]}
    assert _lxd.addresses_from_state(None) == {"ipv4": [], "ipv6": []}


# --- lxd_file ---------------------------------------------------------------------------------
def test_file_plan_compares_content_mode_owner_and_never_shows_content():
    existing = {"content": b"A=1\n", "mode": 0o600, "uid": 0, "gid": 0}
    same = dict(existing)
    assert lxd_file.file_plan(existing, same)[0] is False
    for change in ({"content": b"A=2\n"}, {"mode": 0o640}, {"uid": 1000}, {"gid": 1000}):
        wanted = dict(existing, **change)
        changed, before, after = lxd_file.file_plan(existing, wanted)
        assert changed and "content" not in before and "content" not in after
    changed, before, after = lxd_file.file_plan(None, same)
    assert changed and before == {} and after["mode"] == "0600" and after["size"] == 4
    assert after["sha256"] == lxd_file.sha256(b"A=1\n")
    assert lxd_file.file_plan(existing, None)[0] is True
    assert lxd_file.file_plan(None, None)[0] is False


@pytest.mark.parametrize("path", ["relative", "/etc/../shadow", "/a/\nb", "/dir/", ""])
def test_file_paths_refused(path):
    with pytest.raises(ValidationError):
        lxd_file.validate_path(path)


@pytest.mark.parametrize("mode", ["644x", "9999", "rwx", "0o644", "12345"])
def test_file_modes_refused(mode):
    with pytest.raises(ValidationError):
        lxd_file.parse_mode(mode)


# --- inventory ------------------------------------------------------------------------------
def test_inventory_hosts_from_labels():
    records = [
        {"name": "lxdctl-myapp", "status": "Running",
         "config": {"user.lxdctl.project": "myapp", "user.lxdctl.runtime": "python", "user.lxdctl.git-branch": "main",
                    "user.other": "x", "volatile.uuid": "u"}},
        {"name": "lxdctl-bad", "status": "Running", "config": {"user.lxdctl.project": "Bad;name"}},
        {"name": "plain", "status": "Stopped", "config": {}},
        {"name": "lxdctl-myapp-z", "status": "Running", "config": {"user.lxdctl.project": "myapp"}},
    ]
    hosts = projects.hosts_from_instances(records)
    assert hosts == [("myapp", {"lxdctl_project": "myapp", "lxdctl_runtime": "python", "lxdctl_git_branch": "main",
                                "lxdctl_container": "lxdctl-myapp", "lxdctl_status": "running"})]


# --- documentation matches the code ---------------------------------------------------------
@pytest.mark.parametrize("module", [lxd_instance, lxd_file])
def test_documented_options_match_argument_spec(module):
    import yaml

    doc = yaml.safe_load(module.DOCUMENTATION)
    documented = set(doc["options"]) | set(_lxd.CONNECTION_ARGSPEC)  # those come from the lxd fragment
    assert documented == set(module.argument_spec())
    assert "lxdctl.platform.lxd" in doc["extends_documentation_fragment"]
    yaml.safe_load(module.EXAMPLES)
    yaml.safe_load(module.RETURN)


def test_plugin_docs_parse():
    import yaml

    from ansible_collections.lxdctl.platform.plugins.connection import lxd as connection

    conn = yaml.safe_load(connection.DOCUMENTATION)
    assert {"remote_addr", "lxd_url", "lxd_client_cert", "lxd_client_key", "lxd_verify"} <= set(conn["options"])
    assert conn["options"]["lxd_url"]["env"] == [{"name": "LXDCTL_LXD_URL"}]
    inv = yaml.safe_load(projects.DOCUMENTATION)
    assert inv["options"]["plugin"]["choices"] == ["lxdctl.platform.projects"]


# --- background start: waiting for LXD's running tasks on the instance -------------------
class _FakeResponse(object):
    def __init__(self, body):
        self._body = body

    def json(self):
        return self._body


class _FakeOperationsApi(object):
    """``client.api.operations``: a listing, and ``[id].wait.get`` that records the wait."""

    def __init__(self, running):
        self.running = running
        self.waited = []

    def get(self, params=None):
        assert params == {"recursion": "1"}
        return _FakeResponse({"metadata": {"running": self.running}})

    def __getitem__(self, operation_id):
        api = self

        class _Wait(object):
            def get(self, params=None):
                api.waited.append((operation_id, params))
                return _FakeResponse({})

        class _Operation(object):
            wait = _Wait()

        return _Operation()


class _FakeClient(object):
    def __init__(self, running):
        class _Api(object):
            pass

        self.api = _Api()
        self.api.operations = _FakeOperationsApi(running)


def _operation(op_id, op_class, *instances, description="Starting instance"):
    return {"id": op_id, "class": op_class, "description": description,
            "resources": {"instances": ["/1.0/instances/%s" % i for i in instances]}}


def test_only_task_operations_on_the_instance_are_waited_for():
    client = _FakeClient([
        _operation("start-it", "task", "it"),
        _operation("exec-it", "websocket", "it"),
        _operation("start-other", "task", "it-other"),
        _operation("start-prefix", "task", "i"),
        # a command (LXD runs a non-interactive exec as a task), e.g. a build a killed deploy left behind
        _operation("build-it", "task", "it", description="Executing command"),
    ])
    assert _lxd.running_instance_tasks(client, "it") == ["start-it"]
    _lxd.wait_for_instance_tasks(client, "it", timeout=90)
    assert [op for op, _params in client.api.operations.waited] == ["start-it"]
    assert 1 <= int(client.api.operations.waited[0][1]["timeout"]) <= 90


def test_nothing_running_means_no_wait():
    client = _FakeClient([])
    _lxd.wait_for_instance_tasks(client, "it", timeout=5)
    assert client.api.operations.waited == []


def test_an_instance_url_with_a_project_query_still_matches():
    assert _lxd._operation_targets_instance({"resources": {"instances": ["/1.0/instances/it?project=default"]}}, "it")
    assert not _lxd._operation_targets_instance({"resources": {}}, "it")


def test_background_start_is_only_for_a_start_to_state_started():
    class _Module(object):
        check_mode = False

        def __init__(self, **params):
            self.params = dict(_params(), background_start=True, state="started", force_stop=False, **params)

    service = lxd_instance.InstanceService(_Module(), client=None)
    assert service._starts_in_background(dict(power="start"))
    assert not service._starts_in_background(dict(power=None))
    restarting = lxd_instance.InstanceService(_Module(), client=None)
    restarting.params["state"] = "restarted"
    assert not restarting._starts_in_background(dict(power="start"))


# --- LXD busy: its database times out under many parallel requests --------------------------
def test_a_request_lxd_answers_busy_is_repeated(monkeypatch):
    monkeypatch.setattr(_lxd.time, "sleep", lambda seconds: None)
    calls = []

    def attempt_once():
        calls.append(1)
        if len(calls) < 3:
            raise _lxd.LxdctlError('Failed to start instance it: failed to add "Starting instance" Operation x to '
                                   'database: Failed to begin transaction: context deadline exceeded')
        return "started"

    assert _lxd._retry_when_busy(attempt_once) == "started"
    assert len(calls) == 3


def test_other_errors_and_a_lasting_busy_fail_at_once_or_in_the_end(monkeypatch):
    monkeypatch.setattr(_lxd.time, "sleep", lambda seconds: None)
    calls = []

    def refused():
        calls.append(1)
        raise _lxd.LxdctlError("Failed to start instance it: Missing source path")

    with pytest.raises(_lxd.LxdctlError, match="Missing source path"):
        _lxd._retry_when_busy(refused)
    assert len(calls) == 1

    def always_busy():
        calls.append(1)
        raise _lxd.LxdctlError("Failed to create instance it: database is locked")

    calls[:] = []
    with pytest.raises(_lxd.LxdctlError, match="database is locked"):
        _lxd._retry_when_busy(always_busy)
    assert len(calls) == _lxd.BUSY_ATTEMPTS

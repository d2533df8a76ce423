"""Module ``pipeline_command`` (the host part of the deploy and verify stages): real processes on
this host and a real SQLite state store in a temp dir.  A cancel or the timeout must kill the
command's whole process tree, also what it started in a session of its own (as ansible-runner
does with ansible-playbook), and the stage is recorded with its outcome."""
import os
import subprocess
import threading
import time

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_run as records
from ansible_collections.lxdctl.platform.plugins.module_utils import _procs, _state
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import ValidationError
from ansible_collections.lxdctl.platform.plugins.modules import pipeline_command
from tests.support.ansible_module import run_module

SH = "/bin/sh"


class FakeModule:
    def __init__(self, check_mode=False, **params):
        base = dict(project="myapp", run_id=0, stage="deploy", commands=[], display="", environment={}, timeout=60,
                    keep_going=False, output_cap=65536)
        base.update(params)
        self.params = base
        self.check_mode = check_mode


@pytest.fixture
def store(tmp_path):
    key = tmp_path / "state.key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    st = _state.StateStore.open(url="sqlite:///%s" % (tmp_path / "state.db"), key_file=str(key))
    st.upsert_project("myapp", runtime="python")
    st.upsert_pipeline("myapp", records.PIPELINE, config={}, triggers={})
    st.opener = lambda: _state.StateStore.open(url="sqlite:///%s" % (tmp_path / "state.db"), key_file=str(key))
    yield st
    st.close()


def _run(store, check_mode=False, **params):
    row = store.create_pipeline_run("myapp", records.PIPELINE, status="running", artifacts={"trigger": "t"})
    log = records.RunLog(store, "myapp", row["id"])
    log.stage(params.get("stage", "deploy"), "running", started=time.time())
    service = pipeline_command.CommandService(FakeModule(check_mode=check_mode, run_id=row["id"], **params), log)
    return row, service


def _alive(pid):
    return pid in _procs.parents()


# A tree like `lxdctl deploy`'s: a child in a session of its own (ansible-runner's pty) with a
# grandchild, each writing its pid and then sleeping.
TREE = ("setsid sh -c 'echo $$ > \"$1/child\"; sleep 300 & echo $! > \"$1/grandchild\"; wait' x \"$1\" & "
        "echo $$ > \"$1/top\"; echo started; wait")


def _pids(tmp_path):
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            return [int((tmp_path / n).read_text()) for n in ("top", "child", "grandchild")]
        except (OSError, ValueError):
            time.sleep(0.05)
    raise AssertionError("the tree did not start")


def test_success_logs_output_and_records_the_stage(store):
    row, service = _run(store, commands=[[SH, "-c", "echo deployed $LXDCTL_ACTOR"]], display="lxdctl",
                        environment={"LXDCTL_ACTOR": "pipeline run #1"})
    result = service.run()
    assert result["status"] == "success" and result["results"] == [{"argv": [SH, "-c", "echo deployed $LXDCTL_ACTOR"],
                                                                    "rc": 0}]
    run = records.find_run(store, "myapp", row["id"])
    assert "$ lxdctl -c echo deployed $LXDCTL_ACTOR\ndeployed pipeline run #1\n" in run["logs"]
    assert run["artifacts"]["stages"][0]["name"] == "deploy" and run["artifacts"]["stages"][0]["status"] == "success"
    assert "stage deploy: success" in run["logs"]


def test_ansible_variables_do_not_reach_the_command(store, monkeypatch):
    monkeypatch.setenv("ANSIBLE_CONFIG", "/nonexistent.cfg")
    monkeypatch.setenv("LXDCTL_KEEP_ME", "yes")
    _row, service = _run(store, commands=[[SH, "-c", "echo cfg=${ANSIBLE_CONFIG:-none} keep=$LXDCTL_KEEP_ME"]])
    assert "cfg=none keep=yes" in service.run()["output"]


def test_first_failure_stops_unless_keep_going(store):
    _row, service = _run(store, commands=[[SH, "-c", "exit 3"], [SH, "-c", "echo second"]])
    result = service.run()
    assert result["status"] == "failed" and [r["rc"] for r in result["results"]] == [3]
    assert "exit status 3" in result["output"] and "second" not in result["output"]
    _row, service = _run(store, stage="verify", keep_going=True, commands=[[SH, "-c", "exit 3"], [SH, "-c", "echo second"]])
    result = service.run()
    assert result["status"] == "failed" and [r["rc"] for r in result["results"]] == [3, 0] and "second" in result["output"]


def test_output_past_the_cap_is_dropped_without_stopping_the_command(store):
    _row, service = _run(store, output_cap=2048, commands=[[SH, "-c", "head -c 1000000 /dev/zero | tr '\\0' x; echo; echo done >&2"]])
    result = service.run()
    assert result["status"] == "success"  # drained, never blocked or killed by the cap
    assert "[output truncated at 2048 bytes:" in result["output"] and len(result["output"]) < 4096


def test_timeout_kills_the_whole_tree(store, tmp_path):
    row, service = _run(store, timeout=2, commands=[[SH, "-c", TREE, "x", str(tmp_path)]])
    started = time.monotonic()
    result = service.run()
    pids = _pids(tmp_path)
    assert result["status"] == "timeout" and time.monotonic() - started < 20
    assert not any(_alive(p) for p in pids), "a process of the tree outlived the timeout"
    run = records.find_run(store, "myapp", row["id"])
    assert run["artifacts"]["stages"][0]["status"] == "timeout" and "timed out after 2 seconds" in run["logs"]
    assert "started" in run["logs"]


def test_cancel_kills_the_whole_tree_promptly(store, tmp_path):
    row, service = _run(store, commands=[[SH, "-c", TREE, "x", str(tmp_path)], [SH, "-c", "echo never"]])

    def cancel():
        _pids(tmp_path)
        other = store.opener()  # `lxdctl pipeline cancel`: another connection
        try:
            other.update_pipeline_run(row["id"], status="cancelled")
        finally:
            other.close()

    thread = threading.Thread(target=cancel)
    thread.start()
    started = time.monotonic()
    result = service.run()
    thread.join()
    assert result["status"] == "cancelled" and time.monotonic() - started < 15
    assert not any(_alive(p) for p in _pids(tmp_path))
    assert "never" not in result["output"] and "stopped: the run was cancelled" in result["output"]
    assert records.find_run(store, "myapp", row["id"])["artifacts"]["stages"][0]["status"] == "cancelled"


def test_a_cancelled_run_or_check_mode_runs_nothing(store, tmp_path):
    marker = tmp_path / "ran"
    row, service = _run(store, check_mode=True, commands=[["/usr/bin/touch", str(marker)]])
    assert service.run()["changed"] and not marker.exists()
    row, service = _run(store, commands=[["/usr/bin/touch", str(marker)]])
    store.update_pipeline_run(row["id"], status="cancelled")
    assert service.run()["status"] == "cancelled" and not marker.exists()


def test_kill_tree_finds_children_in_other_sessions(tmp_path):
    proc = subprocess.Popen([SH, "-c", TREE, "x", str(tmp_path)], stdout=subprocess.DEVNULL)
    top, child, grandchild = _pids(tmp_path)
    assert {child, grandchild} <= set(_procs.descendants(proc.pid))
    killed = _procs.kill_tree(proc.pid)
    proc.wait()
    assert set(killed) >= {top, child, grandchild} and pipeline_command.wait_gone(killed)


@pytest.mark.parametrize("params, field", [
    (dict(timeout=0), "timeout"),
    (dict(commands=[[]]), "commands"),
    (dict(commands=[["lxdctl", "deploy"]]), "commands"),
    (dict(environment={"A=B": "x"}), "environment"),
])
def test_validation(params, field):
    base = dict(FakeModule().params, commands=[[SH]])
    base.update(params)
    with pytest.raises(ValidationError) as err:
        pipeline_command.validate(base)
    assert field in str(err.value)


def test_through_ansible_the_argument_spec_holds(tmp_path):
    # the real module entry point: a run that does not exist is an error, not a crash
    key = tmp_path / "k"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    out = run_module("pipeline_command", dict(project="myapp", run_id=5, stage="deploy", commands=[[SH, "-c", "true"]],
                                              state_url="sqlite:///%s" % (tmp_path / "s.db"), state_key_file=str(key)))
    assert out.failed and "does not exist" in out["msg"], out

"""Verify the pipeline role's work: its records (the state store, read with the state's own
client), the run (`lxdctl pipeline status`), the site it deployed (HTTP to nginx), the run's
files, and that no run container outlived the run (lxc)."""
import json
import urllib.request

import testinfra

from lxdctl.collection import module_utils

NAME = "it-pmol"
host = testinfra.get_host("local://")


def _store():
    return module_utils("_state").StateStore.open()


def _status():
    return json.loads(host.check_output("lxdctl pipeline status %s --output json" % NAME))


def test_the_records_of_create_setup_and_secret():
    store = _store()
    try:
        row = store.get_pipeline(NAME, "default")
        secret = store.get_secret(NAME, "webhook-secret")
    finally:
        store.close()
    assert row["config"]["file"] == ".lxdctl.yml" and row["config"]["branch"] == "main"
    assert row["config"]["stages"] == ["build", "deploy", "test", "verify"]
    assert row["config"]["notify"] == {"slack": "http://127.0.0.1:9/molecule"}
    assert row["triggers"] == {"branch": "main", "github": "acme/it-pmol"}
    assert secret and len(secret) == 40


def test_the_run_passed_every_stage_in_order():
    run = _status()
    assert run["status"] == "success" and run["trigger"] == "molecule" and run["branch"] == "main"
    assert [(s["name"], s["status"]) for s in run["stages"]] == [
        ("build", "success"), ("test", "success"), ("deploy", "success"), ("verify", "success")]
    assert run["files"] == ["build/dist/app.txt"]
    kept = host.file("/var/lib/lxdctl/pipelines/%s/%d/build/dist/app.txt" % (NAME, run["run"]))
    assert kept.content_string.strip() == "built %s" % run["commit"]


def test_the_deploy_stage_deployed_the_commit():
    run = _status()
    rows = json.loads(host.check_output("lxdctl deployments %s --output json" % NAME))
    assert rows[0]["status"] == "success" and rows[0]["git_commit"] == run["commit"]
    assert rows[0]["deployed_by"] == "pipeline run #%d" % run["run"]
    req = urllib.request.Request("http://10.77.0.1/", headers={"Host": "%s.lxdctl.test" % NAME})
    with urllib.request.urlopen(req, timeout=5) as resp:
        assert resp.status == 200 and b"python-hello" in resp.read()
    logs = host.check_output("lxdctl pipeline logs %s" % NAME)
    assert "$ lxdctl deploy %s --branch main --commit %s" % (NAME, run["commit"]) in logs
    assert "$ lxdctl health-check %s" % NAME in logs and "$ lxdctl smoke-test %s" % NAME in logs


def test_no_run_container_is_left():
    listed = json.loads(host.check_output("lxc list --format json"))
    assert [c["name"] for c in listed if c["name"].startswith("lxdctl-ci-%s-" % NAME)] == []

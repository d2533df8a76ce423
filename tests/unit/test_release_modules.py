"""The release rules beyond the CLI's (build steps, pruning, pruned releases in the plan), and
the modules app_deployment (on a temporary SQLite state) and app_source (on a local git
repository) driven through real Ansible.  No services: no LXD, no nginx."""
import os
import subprocess
import tarfile

import pytest

from lxdctl.collection import module_utils
from tests.support.ansible_module import run_module

rel = module_utils("_release")


# --- build steps -----------------------------------------------------------------------
def test_build_steps_by_runtime():
    assert [w for _, w in rel.build_steps("python", ["app.py"], requirements="")] == ["python3 -m venv"]
    assert [w for _, w in rel.build_steps("python", ["requirements.txt"], requirements="flask\n", test=True)] == [
        "python3 -m venv", "pip install -r requirements.txt", "python -m unittest (--test)"]
    pkg = '{"scripts": {"build": "tsc", "test": "node t.js"}, "dependencies": {"x": "1"}}'
    assert [w for _, w in rel.build_steps("node", ["package.json"], pkg, test=True)] == [
        "npm install", "npm run build", "npm test (--test)"]
    assert [w for _, w in rel.build_steps("node", ["package.json", "package-lock.json"], pkg)][0] == "npm ci"
    assert rel.build_steps("go", ["go.mod"], build=False) == []
    with pytest.raises(rel.Failure, match="no test script"):
        rel.build_steps("node", ["package.json"], '{"scripts": {}}', test=True)


def test_env_snapshot_and_slot_env():
    snap = rel.env_snapshot("DATABASE_URL='x'\n", "v3")
    assert rel.parse_env_file(snap) == {"DATABASE_URL": "x", "LXDCTL_RELEASE": "v3"}
    assert rel.parse_env_file(rel.slot_env("green", 3001)) == {"PORT": "3001", "LXDCTL_SLOT": "green"}


@pytest.mark.parametrize("value,check", [("v0", "check_version"), ("3", "check_version"), ("red", "check_slot"),
                                         ("health", "check_health_path"), ("/a b", "check_health_path")])
def test_bad_values_refused(value, check):
    with pytest.raises(rel.Failure):
        getattr(rel, check)(value)


# --- pruning -----------------------------------------------------------------------------
def test_prune_keeps_the_newest_and_the_protected():
    present = ["v%d" % i for i in range(1, 10)] + ["lost+found"]
    assert rel.releases_to_prune(present, 5, []) == ["v1", "v2", "v3", "v4"]
    assert rel.releases_to_prune(present, 5, ["v2", "v9"]) == ["v1", "v3", "v4"]
    assert rel.releases_to_prune(present, 2, ["v3"]) == ["v1", "v2", "v4", "v5", "v6", "v7"]
    assert rel.releases_to_prune(["v1", "v2"], 5, []) == []
    with pytest.raises(rel.Failure, match="at least 2"):
        rel.releases_to_prune(present, 1, [])


def row(id_, version, status, dtype, container="lxdctl-myapp", slot="blue", port=3000, **meta):
    target = dict(container=container, slot=slot, port=port, release=version, address="10.77.0.5")
    metadata = dict(target=target, live=[{"address": "10.77.0.5:%d" % port, "weight": 1}], healthy=True)
    metadata.update(meta)
    return dict(id=id_, version=version, status=status, deploy_type=dtype, metadata=metadata, git_commit="c%d" % id_)


PROJECT = {"name": "myapp", "container_name": "lxdctl-myapp", "port": 3000, "runtime": "python",
           "git_repository": "/srv/git/myapp", "git_branch": "main", "domain": "myapp.lxdctl.test"}
SITE = {"name": "myapp", "server_names": ["myapp.lxdctl.test"]}


def test_pruned_releases_cannot_be_rolled_back_to():
    rows = [row(3, "v3", "success", "standard", pruned=[{"container": "lxdctl-myapp", "release": "v1"}]),
            row(2, "v2", "success", "standard", slot="green", port=3001), row(1, "v1", "success", "standard")]
    assert sorted(rel.built_releases(rows)) == ["v2", "v3"]
    with pytest.raises(rel.LxdctlError, match="was pruned"):
        rel.make_plan(PROJECT, rows, "rollback", "standard", 10, "v1", 1, SITE)
    assert rel.make_plan(PROJECT, rows, "rollback", "standard", 10, None, 1, SITE)["version"] == "v2"
    # a release pruned in the other container only is still there in this one
    other = [row(4, "v4", "success", "blue_green", container="lxdctl-myapp-green",
                 pruned=[{"container": "lxdctl-myapp-green", "release": "v3"}])] + rows[1:]
    assert "v2" in rel.built_releases(other)


def test_plan_names_the_release_before_the_current_one():
    first = row(1, "v1", "success", "standard")
    second = row(2, "v2", "success", "standard", slot="green", port=3001, previous=first["metadata"]["target"])
    plan = rel.make_plan(PROJECT, [second, first], "deploy", "standard", 10, None, 1, SITE)
    assert plan["current"]["release"] == "v2" and plan["previous_release"] == "v1" and plan["current_commit"] == "c2"


# --- app_deployment on a temporary state -----------------------------------------------
@pytest.fixture
def state(monkeypatch, tmp_path):
    monkeypatch.setenv("LXDCTL_DATABASE_URL", "sqlite:///%s" % (tmp_path / "state.db"))
    monkeypatch.setenv("LXDCTL_STATE_KEY_FILE", str(tmp_path / "state.key"))
    store = module_utils("_state").StateStore.open()
    store.upsert_project("myapp", status="running", runtime="python", port=3000, domain="myapp.lxdctl.test",
                         git_repository="/srv/git/myapp")
    yield store
    store.close()


def test_app_deployment_begin_finish_and_fail(state):
    pid = os.getpid()
    checked = run_module("app_deployment", dict(project="myapp", step="begin", owner_pid=pid), check=True)
    assert not checked.failed and checked["plan"]["version"] == "v1" and checked["row"] == {}
    assert state.get_lock("project:myapp") is None and state.list_deployments("myapp") == []

    begun = run_module("app_deployment", dict(project="myapp", step="begin", owner_pid=pid, actor="ci"))
    assert begun.changed and begun["row"]["status"] == "pending" and begun["row"]["deployed_by"] == "ci"
    assert state.get_lock("project:myapp")["owner_pid"] == pid
    refused = run_module("app_deployment", dict(project="myapp", step="begin", owner_pid=1))
    assert refused.failed and "locked by pid %d" % pid in refused["msg"]

    meta = {"target": dict(begun["plan"]["target"], address="10.77.0.9"), "healthy": True,
            "live": [{"address": "10.77.0.9:3000", "weight": 1}]}
    done = run_module("app_deployment", dict(project="myapp", step="finish", id=begun["row"]["id"], owner_pid=pid,
                                             values=dict(status="success", git_commit="a" * 40, metadata=meta)))
    assert done.changed and done["row"]["status"] == "success" and done["row"]["completed_at"]
    assert state.get_lock("project:myapp") is None

    # an automatic deploy of the commit that serves already does nothing
    skipped = run_module("app_deployment", dict(project="myapp", step="begin", auto=True, commit="aaaaaaa", owner_pid=pid))
    assert skipped["skip"] and not skipped.changed and len(state.list_deployments("myapp")) == 1
    assert state.get_lock("project:myapp") is None

    other = run_module("app_deployment", dict(project="myapp", step="begin", auto=True, branch="dev", owner_pid=pid))
    assert other.failed and "only deploys the project's branch main, not dev" in other["msg"]
    assert state.get_lock("project:myapp") is None

    # a rollback with nothing before v1: refused, and the lock is released again
    none = run_module("app_deployment", dict(project="myapp", step="begin", action="rollback", owner_pid=pid))
    assert none.failed and "no release before v1" in none["msg"] and state.get_lock("project:myapp") is None

    second = run_module("app_deployment", dict(project="myapp", step="begin", owner_pid=pid))
    assert second["plan"]["version"] == "v2" and second["plan"]["target"]["slot"] == "green"
    failed = run_module("app_deployment", dict(project="myapp", step="fail", id=second["row"]["id"], owner_pid=pid,
                                               error="build failed"))
    assert failed["row"]["status"] == "failed" and failed["row"]["error_message"] == "build failed"
    assert state.get_lock("project:myapp") is None


def test_app_deployment_bad_input(state):
    assert "canary_percent" in run_module("app_deployment", dict(project="myapp", step="begin", canary_percent=0))["msg"]
    assert "v3" in run_module("app_deployment", dict(project="myapp", step="begin", action="rollback", to_version="3"))["msg"]
    assert run_module("app_deployment", dict(project="My_App", step="begin")).failed
    gone = run_module("app_deployment", dict(project="ghost", step="begin"))
    assert gone.failed and "project ghost does not exist" in gone["msg"]


# --- app_source on a local repository ---------------------------------------------------
def git(*args, cwd):
    subprocess.run(["git", "-c", "user.email=t@lxdctl.test", "-c", "user.name=t"] + list(args), cwd=cwd, check=True,
                   capture_output=True)


def test_app_source_git_and_path(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "requirements.txt").write_text("")
    (repo / "app.py").write_text("print('hi')\n")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-qm", "one", cwd=repo)
    got = run_module("app_source", dict(repository=str(repo), branch="main"))
    assert not got.failed and not got.changed and got["runtime"] == "python" and len(got["commit"]) == 40
    with tarfile.open(got["archive"]) as tar:
        assert sorted(tar.getnames()) == ["app.py", "requirements.txt"]
    assert oct(os.stat(got["workdir"]).st_mode & 0o777) == "0o700"
    assert "the branch 'nope' does not exist" in run_module("app_source", dict(repository=str(repo), branch="nope"))["msg"]
    assert "the commit deadbeef does not exist" in run_module("app_source", dict(repository=str(repo),
                                                                                  commit="deadbeef"))["msg"]
    assert "starts with '-'" in run_module("app_source", dict(repository="--upload-pack=touch /tmp/x"))["msg"]
    assert "remote helper" in run_module("app_source", dict(repository="ext::sh -c id"))["msg"]
    (repo / ".venv").mkdir()
    local = run_module("app_source", dict(path=str(repo)))
    with tarfile.open(local["archive"]) as tar:
        assert ".git" not in tar.getnames() and ".venv" not in tar.getnames() and "app.py" in tar.getnames()
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "README.md").write_text("x")
    assert "no runtime recognised" in run_module("app_source", dict(path=str(plain)))["msg"]


# --- app_release's service on a fake LXD (what it asks the container to do) -------------
class FakeModule:
    def __init__(self, check_mode=False, **params):
        base = dict(instance="lxdctl-myapp", state="pruned", keep=5, protect=[], version=None, slot=None, port=None,
                    health_path="/health", health_timeout=2, exclusive=False, delay=0, copy_from=None)
        base.update(params)
        self.params = base
        self.check_mode = check_mode


@pytest.fixture
def fake_lxd(monkeypatch):
    import importlib

    module = importlib.import_module("ansible_collections.lxdctl.platform.plugins.modules.app_release")
    lxd = module._lxd
    calls = []
    answers = {}

    def instance_exec(client, name, argv, environment=None, cwd=None):
        calls.append(list(argv))
        for prefix, answer in answers.items():
            if tuple(argv[:len(prefix)]) == prefix:
                return answer
        return 0, b"", b""

    monkeypatch.setattr(lxd, "instance_exec", instance_exec)
    monkeypatch.setattr(lxd, "get_instance", lambda client, name: {"name": name, "status": "Running"})
    monkeypatch.setattr(lxd, "read_file", lambda client, name, path: None)
    monkeypatch.setattr(lxd, "write_file", lambda *a, **k: calls.append(["write", a[2]]))
    return module, calls, answers


def test_prune_removes_old_releases_only(fake_lxd):
    module, calls, answers = fake_lxd
    answers[("ls",)] = (0, b"v1\nv2\nv3\nv4\nv5\nv6\nv7\n", b"")
    answers[("readlink",)] = (0, b"/srv/app/releases/v2\n/srv/app/releases/v7\n", b"")
    result = module.ReleaseService(FakeModule(keep=3, protect=["v1"]), None).run()
    assert result["changed"] and result["pruned"] == ["v3", "v4"]
    assert result["removed"] == [{"container": "lxdctl-myapp", "release": "v3"}, {"container": "lxdctl-myapp", "release": "v4"}]
    assert calls[-1] == ["rm", "-rf", "--", "/srv/app/releases/v3", "/srv/app/releases/v4"]
    # check mode: the same answer, nothing removed
    del calls[:]
    checked = module.ReleaseService(FakeModule(check_mode=True, keep=3, protect=["v1"]), None).run()
    assert checked["pruned"] == ["v3", "v4"] and not any(c[0] == "rm" for c in calls)


def test_start_of_a_pruned_release_is_refused_clearly(fake_lxd):
    module, calls, answers = fake_lxd
    answers[("sh", "-c")] = (3, b"", b"")
    with pytest.raises(rel.Failure, match="was pruned or never built"):
        module.ReleaseService(FakeModule(state="started", version="v2", slot="green", port=3001), None).run()
    point = [c for c in calls if c[:2] == ["sh", "-c"]][0]
    # the inputs are positional parameters of a fixed script, never part of its text
    assert point[3:] == ["lxdctl-point-slot", "green", "blue", "no", "/srv/app/releases/v2",
                         "# Written by lxdctl: the slot's own settings, over the release's env.\nPORT='3001'\nLXDCTL_SLOT='green'\n"]
    assert "v2" not in point[2] and "3001" not in point[2]


def test_stop_schedules_a_delayed_stop(fake_lxd):
    module, calls, _ = fake_lxd
    result = module.ReleaseService(FakeModule(state="stopped", slot="blue", delay=1.5), None).run()
    assert result["stopped"] == ["blue"] and calls[-1][3:] == ["lxdctl-stop-slot", "blue", "1500"]
    with pytest.raises(rel.Failure):
        module.ReleaseService(FakeModule(state="stopped", slot="red"), None).run()

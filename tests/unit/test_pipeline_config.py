"""Module ``pipeline_config`` (register a pipeline, record triggers, cancel runs, the webhook
secret) through real Ansible on a real SQLite state store in a temp dir and a local git
repository, and the CLI commands that call it through the playbook ``pipeline_manage`` (the
runner replaced by a recorder that runs nothing)."""
import base64
import os
import subprocess

import pytest
from click.testing import CliRunner

from ansible_collections.lxdctl.platform.plugins.module_utils import _state
from lxdctl.commands import pipeline as pipeline_cmd
from lxdctl.main import cli
from tests.support.ansible_module import run_module

GOOD = "test:\n  script: [pytest]\nbuild:\n  script: [make]\n"


def git(repo, *args):
    subprocess.run(["git", "-C", repo, "-c", "user.email=u@lxdctl.test", "-c", "user.name=u"] + list(args),
                   check=True, capture_output=True)


def commit(repo, branch, text):
    if branch != "main":
        git(repo, "checkout", "-q", "-B", branch, "main")
    with open(os.path.join(repo, ".lxdctl.yml"), "w") as handle:
        handle.write(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", branch)
    git(repo, "checkout", "-q", "main")


@pytest.fixture
def env(tmp_path, monkeypatch):
    repo = str(tmp_path / "repo")
    subprocess.run(["git", "init", "-q", "-b", "main", repo], check=True)
    commit(repo, "main", GOOD)
    key = tmp_path / "state.key"
    key.write_bytes(base64.urlsafe_b64encode(os.urandom(32)))
    os.chmod(key, 0o600)
    url = "sqlite:///%s" % (tmp_path / "state.db")
    monkeypatch.setenv("LXDCTL_DATABASE_URL", url)
    monkeypatch.setenv("LXDCTL_STATE_KEY_FILE", str(key))
    store = _state.StateStore.open(url=url, key_file=str(key))
    store.upsert_project("ut-pcfg", runtime="python", git_repository=repo, git_branch="main")
    store.upsert_project("ut-pcfg-nogit", runtime="python")
    yield {"repo": repo, "store": store, "args": {"state_url": url, "state_key_file": str(key)}}
    store.close()


def config(env, **args):
    check = args.pop("_check", False)
    return run_module("pipeline_config", dict(env["args"], project="ut-pcfg", **args), check=check, diff=True)


def test_present_checks_the_file_then_registers_and_converges(env):
    store = env["store"]
    planned = config(env, _check=True, notify={"slack": "https://hooks.example.com/s"})
    assert planned.changed and not planned.failed and planned["pipeline"]["stages"] == ["build", "test"]
    assert store.get_pipeline("ut-pcfg", "default") is None  # check mode wrote nothing
    made = config(env, notify={"slack": "https://hooks.example.com/s"})
    assert made.changed and made["pipeline"] == {"project": "ut-pcfg", "file": ".lxdctl.yml", "branch": "main",
                                                 "stages": ["build", "test"], "notify": ["slack"],
                                                 "triggers": {"branch": "main"}}
    assert "hooks.example.com" not in str(made["diff"])  # URLs may carry tokens: names only
    row = store.get_pipeline("ut-pcfg", "default")
    assert row["config"]["notify"] == {"slack": "https://hooks.example.com/s"}
    assert not config(env).changed  # the stored notify URLs are kept, nothing differs
    added = config(env, notify={"discord": "https://discord.example.com/d"})
    assert added.changed and added["pipeline"]["notify"] == ["discord", "slack"]
    assert [a["action"] for a in store.list_audit("ut-pcfg")] == ["pipeline.create", "pipeline.create"]


def test_present_refuses_bad_files_with_line_and_column(env):
    commit(env["repo"], "malformed", "test:\n  script: [a, b\n")
    commit(env["repo"], "unknown", "test:\n  scripts: [pytest]\n")
    bad = config(env, branch="malformed")
    assert bad.failed and "line 3, column 1" in bad["msg"] and "malformed YAML" in bad["msg"]
    bad = config(env, branch="unknown")
    assert bad.failed and "unknown key 'scripts'" in bad["msg"] and "line 2, column 3" in bad["msg"]
    missing = config(env, file="ci/other.yml")
    assert missing.failed and "the pipeline file ci/other.yml is not in" in missing["msg"]
    assert "does not exist" in config(env, branch="nope")["msg"]
    assert "must be a relative path" in config(env, file="../x.yml")["msg"]
    assert "http:// or https://" in config(env, notify={"slack": "file:///etc/passwd"})["msg"]
    nogit = run_module("pipeline_config", dict(env["args"], project="ut-pcfg-nogit"))
    assert nogit.failed and "has no git repository" in nogit["msg"]
    assert env["store"].get_pipeline("ut-pcfg", "default") is None


def test_triggers_merge_into_an_existing_pipeline_only(env):
    assert not config(env, state="triggers", triggers={"github": "acme/app"}).changed  # no pipeline yet
    config(env)
    recorded = config(env, state="triggers", triggers={"github": "acme/app"})
    assert recorded.changed and recorded["pipeline"]["triggers"] == {"branch": "main", "github": "acme/app"}
    assert not config(env, state="triggers", triggers={"github": "acme/app"}).changed
    assert env["store"].get_pipeline("ut-pcfg", "default")["triggers"]["github"] == "acme/app"
    assert "must look like owner/repo" in config(env, state="triggers", triggers={"github": "no repo"})["msg"]
    assert "triggers are github, gitlab" in config(env, state="triggers", triggers={"svn": "a/b"})["msg"]


def test_cancelled_marks_queued_and_running_runs(env):
    store = env["store"]
    assert "has no pipeline" in config(env, state="cancelled")["msg"]
    config(env)
    done = store.create_pipeline_run("ut-pcfg", "default", status="success")
    queued = store.create_pipeline_run("ut-pcfg", "default", status="queued")
    running = store.create_pipeline_run("ut-pcfg", "default", status="running")
    planned = config(env, state="cancelled", _check=True)
    assert planned.changed and planned["cancelled"] == [3, 2]
    assert planned["diff"]["after"] == {"run 3": "cancelled", "run 2": "cancelled"}
    assert store.list_pipeline_runs("ut-pcfg", "default")[0]["status"] == "running"
    cancelled = config(env, state="cancelled")
    assert cancelled.changed and cancelled["cancelled"] == [3, 2]
    statuses = dict((r["id"], r["status"]) for r in store.list_pipeline_runs("ut-pcfg", "default"))
    assert statuses == {done["id"]: "success", queued["id"]: "cancelled", running["id"]: "cancelled"}
    again = config(env, state="cancelled")
    assert not again.changed and again["cancelled"] == []


def test_secret_is_made_once_returned_only_when_asked_and_rotated(env):
    store = env["store"]
    planned = config(env, state="secret", _check=True, reveal=True)
    assert planned.changed and planned["secret"] is None and store.get_secret("ut-pcfg", "webhook-secret") is None
    made = config(env, state="secret")
    value = store.get_secret("ut-pcfg", "webhook-secret")
    assert made.changed and "secret" not in made and len(value) == 40 and value not in str(made)
    kept = config(env, state="secret", reveal=True)
    assert not kept.changed and kept["secret"] == value
    rotated = config(env, state="secret", rotate=True)
    assert rotated.changed and rotated["rotated"] and "secret" not in rotated
    assert store.get_secret("ut-pcfg", "webhook-secret") not in (None, value)


# --- the CLI: read-only checks here, every write through the playbook pipeline_manage ---------
@pytest.fixture
def calls(env, monkeypatch):
    recorded = []

    class Result:
        changed = 0

        def __init__(self, outputs):
            self.outputs = outputs

    def fake_execute(playbook, extravars, quiet=False, **_kw):
        recorded.append((playbook, dict(extravars)))
        action = extravars["pipeline_action"]
        if action == "secret":
            env["store"].get_or_create_secret(extravars["pipeline_project"], "webhook-secret", length=40,
                                              rotate=extravars["pipeline_secret_rotate"])
        outputs = {"create": {"pipeline": {"file": extravars.get("pipeline_file"), "branch": "main",
                                           "stages": ["build", "test"], "notify": ["slack"], "changed": True}},
                   "cancel": {"pipeline": {"cancelled": [4, 3]}}}.get(action, {})
        return Result(outputs)

    monkeypatch.setattr(pipeline_cmd, "execute", fake_execute)
    return recorded


def run(args):
    return CliRunner().invoke(cli, args, catch_exceptions=False)


def test_cli_create_cancel_secret_go_through_the_playbook(env, calls):
    result = run(["pipeline", "create", "ut-pcfg", "--notify-slack", "https://hooks.example.com/s", "--output", "json"])
    assert result.exit_code == 0, result.output
    assert calls[-1] == ("pipeline_manage", {"pipeline_project": "ut-pcfg", "pipeline_action": "create",
                                             "pipeline_file": ".lxdctl.yml", "pipeline_branch": "",
                                             "pipeline_notify": {"slack": "https://hooks.example.com/s"}})
    assert '"stages": [\n    "build",\n    "test"\n  ]' in result.stdout and '"changed": true' in result.stdout
    env["store"].upsert_pipeline("ut-pcfg", "default", config={"branch": "main"}, triggers={})
    result = run(["pipeline", "cancel", "ut-pcfg"])
    assert result.stdout == "ut-pcfg: cancelled runs #4, #3\n" and calls[-1][1]["pipeline_action"] == "cancel"
    result = run(["pipeline", "secret", "ut-pcfg"])
    first = result.stdout.strip()
    assert len(first) == 40 and calls[-1][1] == {"pipeline_project": "ut-pcfg", "pipeline_action": "secret",
                                                 "pipeline_secret_rotate": False}
    count = len(calls)
    assert run(["pipeline", "secret", "ut-pcfg"]).stdout.strip() == first and len(calls) == count  # read only
    rotated = run(["pipeline", "secret", "ut-pcfg", "--rotate"]).stdout.strip()
    assert rotated != first and calls[-1][1]["pipeline_secret_rotate"] is True


def test_cli_setup_records_the_trigger_through_the_playbook_once(env, calls, tmp_path):
    env["store"].upsert_pipeline("ut-pcfg", "default", config={"branch": "main"}, triggers={"branch": "main"})
    result = run(["pipeline", "setup", "ut-pcfg", "--github", "acme/app", "--output-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert calls == [("pipeline_manage", {"pipeline_project": "ut-pcfg", "pipeline_action": "setup",
                                          "pipeline_triggers": {"github": "acme/app"}})]
    env["store"].upsert_pipeline("ut-pcfg", "default", config={"branch": "main"},
                                 triggers={"branch": "main", "github": "acme/app"})
    run(["pipeline", "setup", "ut-pcfg", "--github", "acme/app", "--output-dir", str(tmp_path)])
    run(["pipeline", "setup", "ut-pcfg", "--drone", "--output-dir", str(tmp_path)])
    assert len(calls) == 1  # already recorded / nothing to record: no playbook


def test_cli_refuses_unknown_projects_before_any_playbook(env, calls):
    for args in (["create", "ut-nope"], ["cancel", "ut-pcfg"], ["secret", "ut-nope"]):
        result = run(["pipeline"] + args)
        assert result.exit_code == 1 and ("does not exist" in result.stderr or "has no pipeline" in result.stderr)
    assert calls == []

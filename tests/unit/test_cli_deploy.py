"""``lxdctl deploy`` / ``deployments`` validation, and the release rules.

No services: the CLI tests stop at click's validation (before any playbook runs), and the
rules are the functions of plugins/module_utils/_release.py (what the app_* modules apply).
"""
import os

import pytest
from click.testing import CliRunner

from lxdctl.collection import module_utils
from lxdctl.main import cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

app = plan = module_utils("_release")


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# --- CLI validation --------------------------------------------------------------------
@pytest.mark.parametrize("args,option,text", [
    (["--canary", "0"], "--canary", "1 to 99"),
    (["--canary", "100"], "--canary", "1 to 99"),
    (["--canary", "-5"], "--canary", "1 to 99"),
    (["--repo", "--upload-pack=touch /tmp/x"], "--repo", "starts with '-'"),
    (["--repo", "ext::sh -c touch% /tmp/pwned"], "--repo", "remote helper"),
    (["--repo", "fd::17"], "--repo", "remote helper"),
    (["--branch", "-x"], "--branch", "not a valid git branch"),
    (["--branch", "a..b"], "--branch", "not a valid git branch"),
    (["--commit", "xyz"], "--commit", "hexadecimal"),
    (["--rollback", "--to", "3"], "--to", "v3"),
    (["--to", "v2"], "--to", "only goes with --rollback"),
    (["--blue-green", "--canary", "10"], "--canary", "--blue-green"),
    (["--rollback", "--promote"], "--promote", "--rollback"),
    (["--promote", "--abort"], "--abort", "--promote"),
    (["--rollback", "--branch", "main"], "--branch", "--rollback"),
    (["--abort", "--canary", "5"], "--canary", "--abort"),
    (["--rollback", "--blue-green"], "--blue-green", "--rollback"),
    (["--auto", "--repo", "/srv/git/other"], "--repo", "--auto"),
    (["--health-path", "health"], "--health-path", "absolute path"),
    (["--health-path", "/a b"], "--health-path", "absolute path"),
])
def test_bad_options_name_the_option(args, option, text):
    result = run("deploy", "myapp", *args)
    assert result.exit_code == 2, result.output
    assert option in result.output and text in result.output, result.output


def test_path_conflicts_with_git_options(tmp_path):
    result = run("deploy", "myapp", "--path", str(tmp_path), "--branch", "main")
    assert result.exit_code == 2 and "--branch" in result.output and "--path" in result.output


def test_missing_path_is_refused(tmp_path):
    result = run("deploy", "myapp", "--path", str(tmp_path / "nope"))
    assert result.exit_code == 2 and "--path" in result.output


def test_bad_project_name():
    result = run("deploy", "My_App")
    assert result.exit_code == 2, result.output


def test_commands_are_registered():
    result = run("--help")
    assert "deploy" in result.output and "deployments" in result.output
    assert "--blue-green" in run("deploy", "--help").output
    assert "--output" in run("deployments", "--help").output


def test_conflicts_pure():
    from lxdctl.commands.deploy import conflicts

    assert conflicts({"branch": "main"}) is None
    assert conflicts({"rollback": True, "to": "v2"}) is None
    assert conflicts({"canary": 20, "test": True}) is None
    assert conflicts({"promote": True, "build": True}) is None
    assert conflicts({"promote": True, "build": False})[0] == "--no-build"


# --- source rules ----------------------------------------------------------------------
@pytest.mark.parametrize("url", ["-u", "--upload-pack=x", "ext::sh -c id", "fd::3", "foo::bar", " /tmp/x", "a\nb", ""])
def test_repo_url_refused(url):
    with pytest.raises(app.Failure):
        app.check_repo_url(url)


@pytest.mark.parametrize("url", ["/srv/git/app.git", "file:///srv/git/app", "https://git.example.com/a/b.git",
                                 "git@github.com:a/b.git", "ssh://git@host:22/a.git", "../relative/repo"])
def test_repo_url_accepted(url):
    assert app.check_repo_url(url) == url


@pytest.mark.parametrize("branch", ["main", "feature/x-1", "release-2.0"])
def test_branch_accepted(branch):
    assert app.check_branch(branch) == branch


@pytest.mark.parametrize("branch", ["-f", "a b", "a..b", "x.lock", "x/", "/x", "a~1", "a^", "a:b", "@{u}"])
def test_branch_refused(branch):
    with pytest.raises(app.Failure):
        app.check_branch(branch)


# --- runtime detection -----------------------------------------------------------------
@pytest.mark.parametrize("files,configured,expected", [
    (["package.json", "server.js"], None, "node"),
    (["requirements.txt", "app.py"], None, "python"),
    (["pyproject.toml"], None, "python"),
    (["go.mod", "main.go"], None, "go"),
    (["package.json", "requirements.txt"], "python", "python"),
    (["package.json", "requirements.txt"], None, "node"),
    (["README.md"], None, None),
    (["README.md"], "python", None),
    ([], None, None),
])
def test_detect_runtime(files, configured, expected):
    assert app.detect_runtime(files, configured) == expected


# --- start command ---------------------------------------------------------------------
def test_procfile_web_line():
    text = "# comment\nworker: python3 worker.py\nweb:  gunicorn app:app --bind 0.0.0.0:$PORT \n"
    assert app.procfile_web(text) == "gunicorn app:app --bind 0.0.0.0:$PORT"
    assert app.procfile_web("worker: x\n") is None
    assert app.procfile_web("web:\n") is None
    assert app.procfile_web(None) is None


def test_start_command_order():
    pkg = '{"scripts": {"start": "node server.js", "build": "tsc"}}'
    assert app.start_command("node", "web: node other.js", pkg) == ("node other.js", "Procfile")
    assert app.start_command("node", None, pkg) == ("node server.js", "package.json")
    assert app.start_command("node", None, pkg, configured="node x.js") == ("node x.js", "configuration")
    assert app.start_command("node", None, '{"scripts": {}}') == (None, None)
    assert app.start_command("python", None, None) == (None, None)
    assert app.start_command("python", "web: python3 app.py\n") == ("python3 app.py", "Procfile")
    assert app.start_command("go", None, None)[1] == "go build"


def test_package_json_must_be_json():
    with pytest.raises(app.Failure):
        app.package_scripts("{nope")


def test_requirements_lines():
    assert app.requirements_lines("# none\n\n") == []
    assert app.requirements_lines("flask==3.0\n# c\nredis\n") == ["flask==3.0", "redis"]


def test_env_file_round_trip():
    line = app.env_file_line("K", "it's {{ x }} $HOME")
    assert app.parse_env_file(line) == {"K": "it's {{ x }} $HOME"}


def test_samples_have_what_deploy_needs():
    samples = os.path.join(ROOT, "samples")
    py = os.listdir(os.path.join(samples, "python-hello"))
    assert app.detect_runtime(py) == "python"
    with open(os.path.join(samples, "python-hello", "Procfile")) as handle:
        assert app.start_command("python", handle.read())[0] == "python3 app.py"
    with open(os.path.join(samples, "node-hello", "package.json")) as handle:
        assert app.start_command("node", None, handle.read())[0] == "node server.js"
    assert app.detect_runtime(os.listdir(os.path.join(samples, "go-hello"))) == "go"


def test_tar_members_stay_inside(tmp_path):
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../escape")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        with pytest.raises(app.Failure):
            list(app.safe_members(tar, str(tmp_path)))


# --- the plan --------------------------------------------------------------------------
PROJECT = {"name": "myapp", "container_name": "lxdctl-myapp", "port": 3000, "runtime": "python",
           "git_repository": "/srv/git/myapp", "git_branch": "main", "domain": "myapp.lxdctl.test"}
SITE = {"name": "myapp", "server_names": ["myapp.lxdctl.test"]}


def row(id_, version, status, dtype, container="lxdctl-myapp", slot="blue", port=3000, **meta):
    target = dict(container=container, slot=slot, port=port, release=version, address="10.77.0.5")
    metadata = dict(target=target, live=[{"address": "10.77.0.5:%d" % port, "weight": 1}], healthy=True)
    metadata.update(meta)
    return dict(id=id_, version=version, status=status, deploy_type=dtype, metadata=metadata, git_commit="c%d" % id_)


def make(rows, action="deploy", strategy="standard", to=None):
    return plan.make_plan(PROJECT, rows, action, strategy, 10, to, 1, SITE)


def test_plan_first_deploy_goes_to_blue():
    p = make([])
    assert p["version"] == "v1" and p["target"]["slot"] == "blue" and p["target"]["port"] == 3000
    assert p["current"] is None


def test_plan_standard_alternates_slots():
    p = make([row(1, "v1", "success", "standard")])
    assert p["version"] == "v2" and p["target"] == dict(container="lxdctl-myapp", slot="green", port=3001, release="v2")


def test_plan_failed_deploys_use_a_number_and_do_not_serve():
    rows = [dict(id=2, version="v2", status="failed", deploy_type="standard", metadata={}), row(1, "v1", "success", "standard")]
    p = make(rows)
    assert p["version"] == "v3" and p["current"]["release"] == "v1" and p["target"]["slot"] == "green"


def test_plan_blue_green_uses_the_other_container():
    p = make([row(1, "v1", "success", "standard")], strategy="blue_green")
    assert p["target"]["container"] == "lxdctl-myapp-green" and p["create_container"] and p["exclusive"]
    back = make([row(2, "v2", "success", "blue_green", container="lxdctl-myapp-green"), row(1, "v1", "success", "standard")],
                strategy="blue_green")
    assert back["target"]["container"] == "lxdctl-myapp"


def test_plan_rollback_previous_and_named():
    rows = [row(3, "v3", "success", "standard", slot="green", port=3001), row(2, "v2", "success", "standard"),
            row(1, "v1", "success", "standard", slot="green", port=3001)]
    p = make(rows, action="rollback")
    assert p["version"] == "v2" and p["deploy_type"] == "rollback" and p["target"]["slot"] == "blue"
    assert make(rows, action="rollback", to="v1")["version"] == "v1"
    with pytest.raises(Exception, match="already serves"):
        make(rows, action="rollback", to="v3")
    with pytest.raises(Exception, match="does not exist"):
        make(rows, action="rollback", to="v9")
    with pytest.raises(Exception, match="no release before"):
        make([row(1, "v1", "success", "standard")], action="rollback")


def test_plan_canary_flow():
    rows = [row(1, "v1", "success", "standard")]
    with pytest.raises(Exception, match="no canary"):
        make(rows, action="promote")
    with pytest.raises(Exception, match="already serves"):
        make([], strategy="canary")
    canary = row(2, "v2", "deploying", "canary", slot="green", port=3001, canary_live=True, canary_percent=10,
                 previous=rows[0]["metadata"]["target"])
    with pytest.raises(Exception, match="in progress"):
        make([canary] + rows)
    p = make([canary] + rows, action="promote")
    assert p["canary_id"] == 2 and p["target"]["slot"] == "green" and p["previous_target"]["slot"] == "blue"


# --- lxdctl deployments, on a real (temporary) SQLite state -----------------------------
@pytest.fixture
def state(monkeypatch, tmp_path):
    from lxdctl.collection import module_utils

    monkeypatch.setenv("LXDCTL_DATABASE_URL", "sqlite:///%s" % (tmp_path / "state.db"))
    monkeypatch.setenv("LXDCTL_STATE_KEY_FILE", str(tmp_path / "state.key"))
    store = module_utils("_state").StateStore.open()
    store.upsert_project("myapp", status="running", runtime="python", port=3000, domain="myapp.lxdctl.test")
    yield store
    store.close()


def test_deployments_lists_newest_first(state):
    first = state.create_deployment("myapp", version="v1", deploy_type="standard", status="success", git_commit="a" * 40,
                                    deployed_by="ci", metadata={"target": {"container": "lxdctl-myapp", "slot": "blue"}})
    state.create_deployment("myapp", version="v2", deploy_type="canary", status="deploying", deployed_by="ci",
                            metadata={"canary_live": True, "canary_percent": 10,
                                      "target": {"container": "lxdctl-myapp", "slot": "green"}})
    state.create_deployment("myapp", version="v3", deploy_type="standard", status="failed", error_message="boom\nmore")
    result = run("deployments", "myapp")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["ID", "VERSION", "TYPE", "STATUS"]
    assert lines[1].split()[:4] == [str(first["id"] + 2), "v3", "standard", "failed"] and "boom" in lines[1]
    assert "deploying (canary 10%)" in lines[2] and "lxdctl-myapp/green" in lines[2]
    assert "aaaaaaaaaa" in lines[3]
    import json

    rows = json.loads(run("deployments", "myapp", "--output", "json").output)
    assert [r["version"] for r in rows] == ["v3", "v2", "v1"] and rows[1]["metadata"]["canary_percent"] == 10


def test_deployments_of_a_missing_project(state):
    result = run("deployments", "nope")
    assert result.exit_code == 1 and "project nope does not exist" in result.output


def test_auto_goes_with_a_commit_and_branch():
    from lxdctl.commands.deploy import conflicts

    assert conflicts({"auto": True, "commit": "abcd1234", "branch": "main"}) is None
    assert conflicts({"auto": True, "path": "/src"})[0] == "--path"

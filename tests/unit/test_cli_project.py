"""CLI validation of project, env and db commands: every bad input is refused with the field
named, before any playbook runs.  No services are needed; the playbook runner is replaced by
a recorder so a test can also check what a valid command would send."""
import json
import os

import pytest
from click.testing import CliRunner

from lxdctl.commands import db as db_cmd
from lxdctl.commands import env as env_cmd
from lxdctl.commands import project as project_cmd
from lxdctl.main import cli


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Records execute() calls instead of running playbooks; a platform config with one zone."""
    recorded = []

    class Result:
        outputs = {}
        changed = 0

    def fake_execute(playbook, extravars, dry_run=False, verbose=0, **_kw):
        recorded.append((playbook, extravars, dry_run, verbose))
        return Result()

    for module in (project_cmd, env_cmd, db_cmd):
        monkeypatch.setattr(module, "execute", fake_execute)
    config = tmp_path / "platform.json"
    config.write_text(json.dumps({"dns": {"managed_zones": ["lxdctl.test", "apps.example.com"],
                                          "default_zone": "lxdctl.test"}}))
    monkeypatch.setenv("LXDCTL_CONFIG", str(config))
    return recorded


def run(args, input=None):
    return CliRunner().invoke(cli, args, input=input, catch_exceptions=False)


def refused(result, *words):
    assert result.exit_code == 2, result.output
    text = result.output
    for word in words:
        assert word in text, "%r not in %r" % (word, text)


# --- the aliases are the same command objects --------------------------------------
def test_top_level_aliases_are_the_group_commands():
    assert project_cmd.project.commands["create"] is project_cmd.create
    assert project_cmd.project.commands["list"] is project_cmd.list_projects
    assert project_cmd.project.commands["status"] is project_cmd.status
    assert project_cmd.project.commands["delete"] is project_cmd.delete
    for name, attr in (("create", "create"), ("list", "list_projects"), ("status", "status"), ("delete", "delete")):
        assert cli.get_command(None, name) is getattr(project_cmd, attr)


# --- names ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["Bad", "1abc", "a_b", "x-", "a--b", "a" * 33, "ab.c", "a b"])
@pytest.mark.parametrize("prefix", [["create"], ["project", "create"], ["status"], ["delete", "--yes"],
                                    ["db", "create"], ["env"], ["env", "set"]])
def test_invalid_names_are_refused(calls, prefix, name):
    extra = {"db": ["--db", "postgres"], "set": ["A=1"]}
    args = prefix + [name] + extra.get(prefix[0], []) + (extra["set"] if prefix[-1] == "set" else [])
    result = run(args)
    refused(result, "NAME", "lowercase letters")
    assert calls == []


def test_a_name_that_looks_like_an_option_is_refused(calls):
    refused(run(["create", "--", "-x"]), "NAME", "lowercase letters")
    refused(run(["create", "-x"]), "-x")
    assert calls == []


@pytest.mark.parametrize("name", ["admin", "postgres", "lxdctl", "www", "root"])
def test_reserved_names_are_refused(calls, name):
    refused(run(["create", name]), "NAME", "reserved")
    assert calls == []


# --- choices, port, sizes -----------------------------------------------------------------
@pytest.mark.parametrize("option,value", [("--db", "oracle"), ("--cache", "varnish"), ("--runtime", "ruby")])
def test_unknown_choices_are_refused(calls, option, value):
    refused(run(["create", "myapp", option, value]), option, value)
    assert calls == []


@pytest.mark.parametrize("port", ["0", "65536", "-1", "http", "80.5", ""])
def test_bad_ports_are_refused(calls, port):
    refused(run(["create", "myapp", "--port", port]), "--port", "1 to 65535")
    assert calls == []


@pytest.mark.parametrize("option,value", [("--memory", "lots"), ("--disk", "10"), ("--memory", "0MiB"), ("--cpu", "0"),
                                          ("--cpu", "two")])
def test_bad_limits_are_refused(calls, option, value):
    refused(run(["create", "myapp", option, value]), option)
    assert calls == []


def test_db_create_needs_a_known_type(calls):
    refused(run(["db", "create", "myapp", "--db", "mongo"]), "--db", "mongo")
    refused(run(["db", "create", "myapp"]), "--db")
    assert calls == []


# --- domains -----------------------------------------------------------------------------
@pytest.mark.parametrize("domain", ["not a domain", "-x.lxdctl.test", "x..lxdctl.test", "single"])
def test_malformed_domains_are_refused(calls, domain):
    refused(run(["create", "myapp", "--domain", domain]), "--domain")
    assert calls == []


@pytest.mark.parametrize("domain", ["myapp.example.org", "lxdctl.test", "evil-lxdctl.test", "x.lxdctl.test.evil.com"])
def test_domains_outside_the_managed_zones_are_refused(calls, domain):
    refused(run(["create", "myapp", "--domain", domain]), "--domain", "not under any zone")
    assert calls == []


# --- git -----------------------------------------------------------------------------------
@pytest.mark.parametrize("url", ["--upload-pack=touch /tmp/x", "-u", "ext::sh -c touch% /tmp/pwned", "EXT::x", "fd::3"])
def test_dangerous_git_urls_are_refused(calls, url):
    refused(run(["create", "myapp", "--git", url]), "--git")
    assert calls == []


@pytest.mark.parametrize("branch", ["-f", "a..b", "a b", "x:y", "a~1"])
def test_bad_branches_are_refused(calls, branch):
    refused(run(["create", "myapp", "--git", "/srv/repo.git", "--branch", branch]), "--branch")
    assert calls == []


# --- env files -----------------------------------------------------------------------------
def test_unreadable_env_file_is_refused(calls, tmp_path):
    refused(run(["create", "myapp", "--env", str(tmp_path / "missing.env")]), "--env", "cannot read")
    assert calls == []


@pytest.mark.parametrize("text,line", [
    ("A=1\nno equals sign\n", "line 2"),
    ("# comment\n\n1BAD=x\n", "line 3"),
    ("A='unterminated\n", "line 1"),
    ('A=1\nB="open\n', "line 2"),
    ('A="x" trailing\n', "line 1"),
    ("DATABASE_URL=postgres://x\n", "line 1"),
])
def test_malformed_env_files_name_the_line(calls, tmp_path, text, line):
    path = tmp_path / "app.env"
    path.write_text(text)
    refused(run(["create", "myapp", "--env", str(path)]), "--env", line)
    assert calls == []


def test_non_utf8_env_file_is_refused(calls, tmp_path):
    path = tmp_path / "app.env"
    path.write_bytes(b"A=1\nB=\xff\n")
    refused(run(["create", "myapp", "--env", str(path)]), "--env", "line 2")
    assert calls == []


def test_env_file_values_are_literal(calls, tmp_path):
    path = tmp_path / "app.env"
    path.write_text("# comment\nPLAIN=a b  c\nexport EXPORTED=1\nJINJA={{ 7*7 }}\nSINGLE='it''s $HOME'\n"
                    'DOUBLE="line1\\nline2 \\"q\\""\nEMPTY=\n')
    result = run(["create", "myapp", "--env", str(path)])
    assert result.exit_code == 0, result.output
    env = calls[0][1]["project_env"]
    assert env == {"PLAIN": "a b  c", "EXPORTED": "1", "JINJA": "{{ 7*7 }}", "SINGLE": "it''s $HOME",
                   "DOUBLE": 'line1\nline2 "q"', "EMPTY": ""}


# --- a valid create sends exactly its inputs -------------------------------------------------
def test_valid_create_sends_the_extravars(calls):
    result = run(["project", "create", "myapp", "--db", "postgres", "--cache", "redis", "--runtime", "python",
                  "--port", "8080", "--domain", "MyApp.Apps.Example.Com.", "--ssl", "--git", "/srv/git/app.git",
                  "--branch", "release/1", "--cpu", "2", "--memory", "512MiB", "--disk", "5GiB", "--dry-run", "-vv"])
    assert result.exit_code == 0, result.output
    playbook, extravars, dry_run, verbose = calls[0]
    assert playbook == "project_create" and dry_run is True and verbose == 2
    assert extravars["project_domain"] == "myapp.apps.example.com"
    assert extravars["project_port"] == 8080
    assert extravars["project_cpu"] == "2"
    assert extravars["lxdctl_owner_pid"] == os.getpid()
    for key, value in {"project_action": "create", "project_name": "myapp", "project_db": "postgres",
                       "project_cache": "redis", "project_runtime": "python", "project_ssl": True,
                       "project_git": "/srv/git/app.git", "project_branch": "release/1", "project_memory": "512MiB",
                       "project_disk": "5GiB"}.items():
        assert extravars[key] == value, key


def test_defaults(calls):
    assert run(["create", "myapp"]).exit_code == 0
    extravars = calls[0][1]
    assert extravars["project_db"] == "none" and extravars["project_cache"] == "none"
    assert extravars["project_runtime"] == "node" and extravars["project_port"] == 3000
    assert extravars["project_env"] == {}
    # empty strings are left out so the role's defaults apply (ansible-core loads !unsafe '' as None)
    assert "project_domain" not in extravars and "project_git" not in extravars and "project_cpu" not in extravars


def test_mongo_is_passed_to_the_playbook_which_refuses_it_without_an_external_server(calls):
    # The CLI cannot know the operator's registration; the role's preflight decides (see
    # tests/integration/test_project_lifecycle.py::test_mongo_fails_before_creating_anything).
    assert run(["create", "myapp", "--db", "mongo"]).exit_code == 0
    assert calls[0][1]["project_db"] == "mongo"


# --- delete ---------------------------------------------------------------------------------
def test_delete_without_yes_refuses_when_stdin_is_not_a_terminal(calls):
    result = run(["delete", "myapp"])
    assert result.exit_code == 2
    assert "--yes" in result.output
    assert calls == []


def test_delete_with_yes(calls):
    assert run(["delete", "myapp", "--yes", "--keep-data"]).exit_code == 0
    playbook, extravars, _dry, _v = calls[0]
    assert playbook == "project_delete"
    assert extravars["project_action"] == "delete" and extravars["project_keep_data"] is True


# --- env set / unset ---------------------------------------------------------------------------
def test_env_set_values_are_literal(calls):
    result = run(["env", "set", "myapp", "MULTI=a\nb", "JINJA={{ 7*7 }}", "EQ=x=y", "EMPTY="])
    assert result.exit_code == 0, result.output
    playbook, extravars, _dry, _v = calls[0]
    assert playbook == "env_set" and extravars["project_action"] == "env_set"
    assert extravars["project_env"] == {"MULTI": "a\nb", "JINJA": "{{ 7*7 }}", "EQ": "x=y", "EMPTY": ""}


@pytest.mark.parametrize("assignment", ["NOEQUALS", "1A=x", "A-B=x", "=x", "PORT=1", "DATABASE_URL=x"])
def test_env_set_bad_assignments_are_refused(calls, assignment):
    refused(run(["env", "set", "myapp", assignment]), "K=V")
    assert calls == []


def test_env_unset(calls):
    assert run(["env", "unset", "myapp", "A", "B"]).exit_code == 0
    assert calls[0][1]["project_action"] == "env_unset"
    assert calls[0][1]["project_env_unset"] == ["A", "B"]
    refused(run(["env", "unset", "myapp", "bad-key"]), "KEY")
    refused(run(["env", "unset", "myapp", "REDIS_URL"]), "KEY")
    assert len(calls) == 1


def test_env_needs_arguments(calls):
    refused(run(["env", "set", "myapp"]), "KEY=VALUE")
    refused(run(["env", "unset", "myapp"]), "KEY")
    assert calls == []


def test_env_help():
    result = run(["env", "--help"])
    assert result.exit_code == 0 and "env set NAME" in result.output


# --- masking in `lxdctl env` -----------------------------------------------------------------
def test_mask_value():
    assert env_cmd.mask_value("DATABASE_URL", "postgresql://p_a:s3cret@10.77.0.1:5432/p_a") == \
        "postgresql://p_a:********@10.77.0.1:5432/p_a"
    assert env_cmd.mask_value("API_TOKEN", "abc") == "********"
    assert env_cmd.mask_value("GREETING", "hello") == "hello"

"""The remote CLI's authorization by command and project, and the client's settings file."""
import json
import os
import stat

import pytest

from lxdctl.api import client, routes_cli, uploads
from lxdctl.api.server import ApiError


@pytest.mark.parametrize("argv,words,permission", [
    (["list"], ["list"], "read"),
    (["status", "myapp"], ["status"], "read"),
    (["db", "backups", "myapp"], ["db", "backups"], "read"),
    (["db", "create", "myapp", "--db", "postgres"], ["db", "create"], "write"),
    (["deploy", "myapp", "--branch", "main"], ["deploy"], "write"),
    (["token", "list"], ["token", "list"], "admin"),
    (["init", "--yes"], ["init"], "local"),
    (["user", "list"], ["user", "list"], "local"),
])
def test_permission_by_command(argv, words, permission):
    got_words, _cmd, params = routes_cli.resolve(argv)
    assert got_words == words
    assert routes_cli.permission_for(got_words) == permission


def test_project_comes_from_the_parsed_arguments():
    assert routes_cli.resolve(["status", "myapp", "--output", "json"])[2]["name"] == "myapp"
    assert routes_cli.resolve(["dns", "add", "www.example.com", "--type", "A", "--content", "10.0.0.1",
                               "--project", "myapp"])[2]["project"] == "myapp"
    assert routes_cli.resolve(["exec", "myapp", "--", "status", "other"])[2]["name"] == "myapp"
    with pytest.raises(ApiError):
        routes_cli.resolve(["no-such-command"])
    with pytest.raises(ApiError):
        routes_cli.resolve([])


def test_file_options_are_named():
    _words, cmd, params = routes_cli.resolve(["deploy", "myapp", "--path", "/"])
    assert params.get("path") and "path" in uploads.path_params(cmd)


def test_config_file_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("LXDCTL_SERVER", raising=False)
    monkeypatch.delenv("LXDCTL_TOKEN", raising=False)
    monkeypatch.delenv("LXDCTL_LOCAL", raising=False)
    assert client.remote_settings() is None
    client.save_config({"server": "http://127.0.0.1:1/", "token": "t"})
    path = client.config_path()
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert json.load(open(path))["token"] == "t"
    assert client.remote_settings() == ("http://127.0.0.1:1", "t")
    monkeypatch.setenv("LXDCTL_LOCAL", "1")
    assert client.remote_settings() is None


def test_audit_scrub_keeps_no_url_secrets():
    from lxdctl.api.server import scrub

    got = scrub({"git": "https://user:tok3n@git.example/a/b.git", "notify_slack": "https://hooks.example/T/B/s3cret",
                 "ssh": "git@git.example:a/b.git", "name": "myapp", "list": ["http://h/x?token=s3cret"]})
    text = json.dumps(got)
    assert "tok3n" not in text and "s3cret" not in text and "a/b.git" not in text
    assert got["name"] == "myapp" and got["git"].startswith("https://git.example")

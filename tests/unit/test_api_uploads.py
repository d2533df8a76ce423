"""Local files in remote mode (lxdctl.api.uploads): which options name them, how the client packs
them, and how the server unpacks them without leaving its private directory."""
import io
import json
import os
import tarfile

import pytest

from lxdctl.api import routes_cli, uploads
from lxdctl.api.server import ApiError


def _tar(members):
    """A gzip'd tar of ``[(name, kind, data or link target)]``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, kind, data in members:
            info = tarfile.TarInfo(name)
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                info.mode = 0o755
                tar.addfile(info)
            elif kind == "link":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
            elif kind == "hard":
                info.type = tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
            else:
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_the_path_options_of_the_commands_are_found():
    _words, cmd, start = uploads.real_command(["deploy", "myapp", "--path", "src", "--branch=x"])
    assert start == 1 and set(uploads.path_params(cmd)) == {"path"}
    assert uploads.find_path_words(["deploy", "myapp", "--path", "src"], 1, cmd) == [(2, "--path", "src", True)]
    # a value of another option and anything after -- are not options
    assert uploads.find_path_words(["deploy", "myapp", "--start-command", "--path", "--", "--path=x"], 1, cmd) == []
    _words, cmd, _start = uploads.real_command(["project", "create", "myapp"])
    assert uploads.path_params(cmd)["env_file"][1] is False
    _words, cmd, _start = uploads.real_command(["pipeline", "setup", "myapp"])
    assert uploads.path_params(cmd)["output_dir"][1] is True
    # health-check --path is a URL path, not a file
    _words, cmd, _start = uploads.real_command(["health-check", "myapp"])
    assert uploads.path_params(cmd) == {}


def _all_commands():
    import importlib

    import click

    from lxdctl.main import COMMANDS

    def walk(words, cmd):
        yield words, cmd
        if isinstance(cmd, click.Group):
            for name, sub in cmd.commands.items():
                yield from walk(words + (name,), sub)

    for name, (module, attr) in COMMANDS.items():
        yield from walk((name,), getattr(importlib.import_module("lxdctl.commands." + module), attr))


def test_the_quick_check_knows_every_path_option_of_the_cli():
    """The client skips its look at the command unless argv names one of these: they must be complete."""
    seen = set()
    for words, cmd in _all_commands():
        if words[0] in routes_cli.LOCAL_ONLY:  # never sent to a server (serve --tls-cert FILE)
            continue
        for name, (param, is_output) in uploads.path_params(cmd).items():
            seen.update(param.opts)
            assert set(param.opts) <= set(uploads.PATH_OPTIONS), (words, param.opts)
            if is_output and uploads.default_path(param):
                assert words in uploads.DEFAULT_OUTPUT_COMMANDS, words
    assert seen == set(uploads.PATH_OPTIONS)


def test_client_packs_a_directory_without_what_deploy_skips(tmp_path):
    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "app.py").write_text("print(1)\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(src / "run.sh", 0o755)
    (src / ".git").mkdir()
    (src / ".git" / "HEAD").write_text("ref\n")
    (src / "node_modules").mkdir()
    os.symlink("pkg/app.py", src / "link.py")
    argv, sent, data = uploads.prepare(["deploy", "myapp", "--path", str(src), "--test"])
    assert argv == ["deploy", "myapp", "--path=", "--test"]
    assert sent == [{"option": "--path", "kind": "dir", "output": False, "display": str(src),
                     "resolved": os.path.realpath(str(src)), "index": 2}]
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = dict((m.name, m) for m in tar.getmembers())
    assert set(names) == {"u0", "u0/pkg", "u0/pkg/app.py", "u0/run.sh", "u0/link.py"}
    assert names["u0/run.sh"].mode & 0o100 and names["u0/link.py"].linkname == "pkg/app.py"
    # unpacked on the server side: the same tree, in a private directory removed by close()
    ws = uploads.Workspace(sent, data)
    try:
        root = ws.path(0)
        assert open(os.path.join(root, "pkg", "app.py")).read() == "print(1)\n"
        assert os.access(os.path.join(root, "run.sh"), os.X_OK)
        assert os.readlink(os.path.join(root, "link.py")) == "pkg/app.py"
        assert os.stat(ws.dir).st_mode & 0o777 == 0o700
    finally:
        ws.close()
    assert not os.path.exists(ws.dir)


def test_a_missing_file_is_sent_as_missing_and_the_output_default_is_the_callers_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv, sent, _data = uploads.prepare(["create", "myapp", "--env", "nosuch.env"])
    assert argv == ["create", "myapp", "--env="] and sent[0]["kind"] == "missing"
    argv, sent, _data = uploads.prepare(["pipeline", "setup", "myapp", "--drone"])
    assert argv == ["pipeline", "setup", "myapp", "--drone", "--output-dir="]
    assert sent[0]["display"] == "." and sent[0]["output"] is True and sent[0]["kind"] == "dir"
    assert uploads.prepare(["list"]) == (["list"], [], None)
    assert uploads.prepare(["deploy", "--help"])[1] == []


def test_output_directory_sends_only_the_files_the_command_writes_and_gets_back_the_changed_ones(tmp_path):
    out = tmp_path / "out"
    (out / ".github" / "workflows").mkdir(parents=True)
    (out / "Jenkinsfile").write_text("old\n")
    (out / "unrelated.txt").write_text("private\n")
    argv, sent, data = uploads.prepare(["pipeline", "setup", "myapp", "--jenkins", "--output-dir=%s" % out])
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(m.name for m in tar.getmembers()) == ["u0", "u0/Jenkinsfile"]
    ws = uploads.Workspace(sent, data)
    try:
        assert ws.outputs() is None  # nothing written yet
        with open(os.path.join(ws.path(0), "Jenkinsfile"), "w") as handle:
            handle.write("new\n")
        os.makedirs(os.path.join(ws.path(0), "sub"))
        with open(os.path.join(ws.path(0), "sub", "x.yml"), "w") as handle:
            handle.write("x\n")
        files = ws.outputs()
        # what the command printed comes back with the user's own words for the path
        line = ("wrote %s/Jenkinsfile\n" % ws.slots[0]).encode()
        assert uploads.rewrite(line, ws.substitutions()) == ("wrote %s/Jenkinsfile\n" % out).encode()
    finally:
        ws.close()
    uploads.write_outputs(files, sent)
    assert (out / "Jenkinsfile").read_text() == "new\n" and (out / "sub" / "x.yml").read_text() == "x\n"
    assert (out / "unrelated.txt").read_text() == "private\n"


@pytest.mark.parametrize("members,why", [
    ([("u0", "dir", None), ("u0/../escape", "file", b"x")], "outside its slot"),
    ([("/etc/x", "file", b"x")], "outside its slot"),
    ([("u1", "file", b"x")], "outside its slot"),
    ([("u0", "dir", None), ("u0/l", "link", "/etc")], "links out"),
    ([("u0", "dir", None), ("u0/l", "link", "../../x")], "links out"),
    ([("u0", "dir", None), ("u0/h", "hard", "/etc/passwd")], "only files, directories and links"),
    ([("u0", "dir", None), ("u0/a", "file", b"1"), ("u0/a", "file", b"2")], "there twice"),
])
def test_server_refuses_members_that_leave_their_slot(members, why):
    sent = [{"option": "--path", "kind": "dir", "output": False, "display": "x", "resolved": "/x", "index": 2}]
    with pytest.raises(uploads.UploadError, match=why):
        uploads.Workspace(sent, _tar(members))


def test_server_refuses_a_file_written_through_a_link(tmp_path):
    sent = [{"option": "--path", "kind": "dir", "output": False, "display": "x", "resolved": "/x", "index": 2}]
    members = [("u0", "dir", None), ("u0/d", "dir", None), ("u0/l", "link", "d"), ("u0/l/f", "file", b"ok")]
    ws = uploads.Workspace(sent, _tar(members))  # a link inside the slot is fine
    try:
        assert open(os.path.join(ws.path(0), "d", "f")).read() == "ok"
    finally:
        ws.close()


def test_unpacked_size_is_limited(monkeypatch):
    monkeypatch.setattr(uploads, "MAX_UNPACKED", 1000)
    sent = [{"option": "--path", "kind": "dir", "output": False, "display": "x", "resolved": "/x", "index": 2}]
    with pytest.raises(uploads.UploadError, match="more than 1000 bytes"):
        uploads.Workspace(sent, _tar([("u0", "dir", None), ("u0/big", "file", b"0" * 2000)]))


def test_client_refuses_to_write_unexpected_files_from_the_server(tmp_path):
    sent = [{"option": "--output-dir", "kind": "dir", "output": True, "display": str(tmp_path), "index": 3}]
    for name in ("0/../evil", "0//abs", "1/x", "0/"):
        with pytest.raises(uploads.UploadError, match="unexpected file"):
            uploads.write_outputs(_tar([(name, "file", b"x")]), sent)
    assert os.listdir(str(tmp_path)) == []


def test_the_body_is_a_json_line_then_the_files():
    body, files = uploads.split_body(json.dumps({"argv": ["x\ny"]}).encode() + b"\n" + b"\x1f\x8b...")
    assert body == {"argv": ["x\ny"]} and files == b"\x1f\x8b..."
    for bad in (b"no newline", b"[1]\nx", b"{bad\nx"):
        with pytest.raises(uploads.UploadError):
            uploads.split_body(bad)


def test_server_refuses_a_path_that_came_without_its_upload():
    for argv in (["deploy", "myapp", "--path", "/"], ["create", "myapp", "--env", "/etc/shadow"],
                 ["create", "myapp", "--env=/etc/shadow"], ["pipeline", "setup", "myapp", "--drone"],
                 ["pipeline", "setup", "myapp", "--drone", "--output-dir", "/etc"]):
        words, cmd, _params = routes_cli.resolve(argv)
        with pytest.raises(ApiError, match="without its upload"):
            routes_cli._check_paths(cmd, argv, len(words), [])
    # an upload for one --env does not cover a second, raw one
    argv = ["create", "myapp", "--env=", "--env=/etc/shadow"]
    up = {"option": "--env", "kind": "file", "output": False, "display": "x", "resolved": "/x", "index": 2}
    words, cmd, _params = routes_cli.resolve(argv)
    with pytest.raises(ApiError, match="without its upload"):
        routes_cli._check_paths(cmd, argv[:2] + argv[3:], len(words), [up])
    # the upload must point at its own option, and at an option that names a local file
    argv = ["deploy", "myapp", "--path="]
    good = {"option": "--path", "kind": "dir", "output": False, "display": "x", "resolved": "/x", "index": 2}
    assert routes_cli._uploads({"uploads": [good]}, argv) == [good]
    for bad in (dict(good, index=1), dict(good, index=True), dict(good, kind="socket"), dict(good, option="--branch")):
        with pytest.raises(ApiError):
            routes_cli._uploads({"uploads": [bad]}, argv)
    words, cmd, _params = routes_cli.resolve(["health-check", "myapp"])
    with pytest.raises(ApiError, match="does not name a local file"):
        routes_cli._check_paths(cmd, ["health-check", "myapp"], 1, [good])
    # a command whose path option is not given needs no upload
    argv = ["create", "myapp", "--runtime", "python"]
    words, cmd, _params = routes_cli.resolve(argv)
    routes_cli._check_paths(cmd, argv, len(words), [])
    # health-check --path /health is a URL path: no upload needed
    argv = ["health-check", "myapp", "--path", "/health"]
    words, cmd, _params = routes_cli.resolve(argv)
    routes_cli._check_paths(cmd, argv, len(words), [])

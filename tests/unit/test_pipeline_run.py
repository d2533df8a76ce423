"""Pieces of a pipeline run that need no services: artifact unpacking, names, notices."""
import io
import os
import tarfile

from lxdctl.pipelines import notify, run


def _tar(entries):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(data)
                info.mode = 0o4755  # setuid is dropped on the host
                tar.addfile(info, io.BytesIO(data))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "symlink":
                info.type = tarfile.SYMTYPE
                info.linkname = data
                tar.addfile(info)
            elif kind == "hardlink":
                info.type = tarfile.LNKTYPE
                info.linkname = data
                tar.addfile(info)
    return buf.getvalue()


def test_extract_keeps_only_files_inside(tmp_path):
    dest = tmp_path / "run"
    dest.mkdir()
    outside = tmp_path / "outside.txt"
    data = _tar([("dist", "dir", None), ("dist/app.js", "file", b"ok"), ("../outside.txt", "file", b"evil"),
                 ("/etc/evil", "file", b"evil"), ("dist/link", "symlink", "/etc/passwd"),
                 ("dist/hard", "hardlink", "/etc/passwd")])
    assert run._extract(data, str(dest)) == ["dist/app.js"]
    assert (dest / "dist" / "app.js").read_bytes() == b"ok"
    assert not outside.exists() and not (dest / "dist" / "link").exists() and not (dest / "dist" / "hard").exists()
    assert oct(os.stat(dest / "dist" / "app.js").st_mode & 0o7777) == "0o640"


def test_names_and_dirs():
    assert run.container_name("myapp", 12) == "lxdctl-ci-myapp-12"
    assert run.run_dir("myapp", 3).endswith("/myapp/3")
    assert len(run.container_name("a" * 32, 999999)) <= 63


def test_wrapper_passes_the_line_as_an_argument():
    # the user's line is "$1" of a fixed script; nothing of it is put into the script text
    assert '"$1"' in run._WRAPPER and "head -c \"$2\"" in run._WRAPPER


def test_notice_text_and_payloads():
    text = notify.message("myapp", 4, "success", {"branch": "main", "commit": "abcdef0123456789",
                                                  "stages": [{"name": "test", "status": "success"}],
                                                  "environment": {"url": "https://myapp.example.com"}})
    assert text == ("lxdctl pipeline myapp run #4 succeeded (branch main, commit abcdef012345): test success"
                    " - https://myapp.example.com")
    assert notify.payload("slack", "x") == {"text": "x"}
    assert notify.payload("discord", "x") == {"content": "x"}


def test_notice_refuses_other_schemes():
    lines = notify.send_all({"slack": "file:///etc/passwd"}, "x")
    assert lines == ["notify slack: not sent: only http(s) URLs are used"]


def test_notice_to_a_closed_port_is_logged_not_raised():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    lines = notify.send_all({"discord": "http://127.0.0.1:%d/hook" % port}, "x")
    assert lines[0].startswith("notify discord: not sent:")

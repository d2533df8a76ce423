"""Pieces of a pipeline run that need no services: artifact unpacking, names, notices, the plan
of a run from its pipeline file, and the run's log caps and records (on a real SQLite store in a
temp dir)."""
import io
import os
import tarfile

import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_run as records
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.modules import pipeline_spec, pipeline_step
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
    assert pipeline_step.extract(data, str(dest)) == ["dist/app.js"]
    assert (dest / "dist" / "app.js").read_bytes() == b"ok"
    assert not outside.exists() and not (dest / "dist" / "link").exists() and not (dest / "dist" / "hard").exists()
    assert oct(os.stat(dest / "dist" / "app.js").st_mode & 0o7777) == "0o640"


def test_names_and_dirs():
    assert run.container_name("myapp", 12) == "lxdctl-ci-myapp-12" == records.container_name("myapp", 12)
    assert run.run_dir("myapp", 3).endswith("/myapp/3")
    assert len(run.container_name("a" * 32, 999999)) <= 63


def test_wrapper_passes_the_line_as_an_argument():
    # the user's line is "$1" of a fixed script; nothing of it is put into the script text
    assert '"$1"' in pipeline_step.WRAPPER and "head -c \"$2\"" in pipeline_step.WRAPPER
    assert "$1" not in pipeline_step.WRAPPER.replace('"$1"', "")


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


def _archive(tmp_path, files):
    path = tmp_path / "source.tar"
    with tarfile.open(path, "w") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def _spec_params(archive, **overrides):
    params = dict(archive=archive, file=".lxdctl.yml", project="myapp", branch="main", commit="ab" * 20,
                  domain="myapp.example.com", only=[])
    params.update(overrides)
    return params


PIPE = """\
variables: {GREETING: hi}
deploy:
  environment: {url: "https://$PROJECT.$DOMAIN"}
test:
  script: ["echo $PROJECT ${BRANCH} $COMMIT $GREETING $HOME"]
  timeout: 30
build:
  script: [make]
  artifacts: [dist/]
"""


def test_plan_orders_stages_and_substitutes_only_the_four_variables(tmp_path):
    archive = _archive(tmp_path, {".lxdctl.yml": PIPE})
    params = _spec_params(archive)
    plan = pipeline_spec.plan(pipeline_spec.read_member(archive, ".lxdctl.yml"), params)
    assert [s["name"] for s in plan["stages"]] == ["build", "test", "deploy"]
    test = plan["stages"][1]
    assert test["script"] == ["echo myapp main %s $GREETING $HOME" % ("ab" * 20)] and test["timeout"] == 30
    assert plan["stages"][0]["timeout"] == 600 and plan["stages"][0]["artifacts"] == ["dist/"]
    assert plan["stages"][2]["environment"] == {"url": "https://myapp.example.com"}
    assert plan["environment"]["GREETING"] == "hi" and plan["environment"]["CI"] == "true"
    assert plan["environment"]["DOMAIN"] == "example.com"


def test_plan_only_and_missing_stage(tmp_path):
    archive = _archive(tmp_path, {".lxdctl.yml": PIPE})
    text = pipeline_spec.read_member(archive, ".lxdctl.yml")
    assert [s["name"] for s in pipeline_spec.plan(text, _spec_params(archive, only=["test"]))["stages"]] == ["test"]
    with pytest.raises(LxdctlError, match="the pipeline file has no verify stage"):
        pipeline_spec.plan(text, _spec_params(archive, only=["verify"]))
    assert pipeline_spec.read_member(archive, "other.yml") is None


def test_plan_reports_line_and_column(tmp_path):
    archive = _archive(tmp_path, {".lxdctl.yml": "test:\n  scripts: [x]\n"})
    with pytest.raises(Exception, match="line 2, column 3.*unknown key 'scripts'"):
        pipeline_spec.plan(pipeline_spec.read_member(archive, ".lxdctl.yml"), _spec_params(archive))


@pytest.fixture
def store(tmp_path):
    from ansible_collections.lxdctl.platform.plugins.module_utils import _state

    key = tmp_path / "state.key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    st = _state.StateStore.open(url="sqlite:///%s" % (tmp_path / "state.db"), key_file=str(key))
    st.upsert_project("myapp", runtime="python")
    yield st
    st.close()


def _queued(store):
    store.upsert_pipeline("myapp", records.PIPELINE, config={}, triggers={})
    return store.create_pipeline_run("myapp", records.PIPELINE, status="queued", artifacts={"trigger": "t"})


def test_run_log_caps_output_but_keeps_the_closing_lines(store, monkeypatch):
    row = _queued(store)
    monkeypatch.setattr(records, "LOG_CAP", 100)
    log = records.RunLog(store, "myapp", row["id"])
    log.write("x" * 500, output=True)
    assert log.log.startswith("x" * 100) and "[log truncated at 100 bytes]" in log.log
    log.write("run #1: failed\n")
    log.flush(status="failed")
    again = records.RunLog(store, "myapp", row["id"])
    assert again.log.endswith("run #1: failed\n") and again.row["status"] == "failed"


def test_stage_records_time_themselves(store):
    row = _queued(store)
    log = records.RunLog(store, "myapp", row["id"])
    log.stage("test", "running", started=0.0)
    record = log.stage("test", "failed")
    assert record["status"] == "failed" and record["seconds"] > 0
    assert [s["name"] for s in log.facts["stages"]] == ["test"]

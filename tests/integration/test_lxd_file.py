"""lxd_file against a real container, each step checked with `lxc exec` (stat, cat, test)."""
import json
import subprocess

import pytest

from tests.integration.lxd_support import run_module

pytestmark = pytest.mark.integration

NAME = "it-inst-file"
PATH = "/etc/it-inst/app.env"
SECRET = "DATABASE_URL=postgresql://p_it:s3cr3t-value@10.77.0.1/p_it\n"


def lxc(*args, check=True):
    proc = subprocess.run(["lxc"] + list(args), capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError("lxc %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


def inside(*argv):
    return lxc("exec", NAME, "--", *argv, check=False)


@pytest.fixture(scope="module")
def container():
    lxc("delete", "--force", NAME, check=False)
    lxc("launch", "lxdctl-base", NAME, "-p", "lxdctl")
    inside("mkdir", "-p", "/etc/it-inst")
    yield NAME
    lxc("delete", "--force", NAME, check=False)


def args(**extra):
    base = dict(instance=NAME, path=PATH, content=SECRET, owner=1000, group=1000, mode="0600")
    base.update(extra)
    return base


def test_file_lifecycle(container):
    res = run_module("lxd_file", args(), check=True, diff=True)
    assert not res.failed, res
    assert res.changed and res["diff"]["before"] == {}
    assert inside("test", "-e", PATH).returncode == 1

    res = run_module("lxd_file", args(), diff=True)
    assert not res.failed and res.changed
    assert inside("cat", PATH).stdout == SECRET
    assert inside("stat", "-c", "%a %u %g", PATH).stdout.split() == ["600", "1000", "1000"]
    assert "s3cr3t-value" not in json.dumps(res)  # content is secret: not in the diff, not in the result

    assert not run_module("lxd_file", args()).changed

    res = run_module("lxd_file", args(content=SECRET + "EXTRA=1\n"), diff=True)
    assert res.changed and res["diff"]["before"]["sha256"] != res["diff"]["after"]["sha256"]
    assert inside("cat", PATH).stdout.endswith("EXTRA=1\n")

    res = run_module("lxd_file", args(content=SECRET + "EXTRA=1\n", mode="0640"))
    assert res.changed and inside("stat", "-c", "%a", PATH).stdout.strip() == "640"
    res = run_module("lxd_file", args(content=SECRET + "EXTRA=1\n", mode="0640", owner=0, group=0))
    assert res.changed and inside("stat", "-c", "%u %g", PATH).stdout.split() == ["0", "0"]

    res = run_module("lxd_file", args(content=SECRET + "EXTRA=1\n", mode="0640", owner=0, group=0), diff=True)
    assert not res.changed and res["diff"]["before"] == res["diff"]["after"]

    res = run_module("lxd_file", dict(instance=NAME, path=PATH, state="absent"), check=True)
    assert res.changed and inside("test", "-e", PATH).returncode == 0
    assert run_module("lxd_file", dict(instance=NAME, path=PATH, state="absent")).changed
    assert inside("test", "-e", PATH).returncode == 1
    assert not run_module("lxd_file", dict(instance=NAME, path=PATH, state="absent")).changed


@pytest.mark.parametrize("bad,field", [
    (dict(path="relative/app.env"), "path"),
    (dict(path="/etc/it-inst/../shadow-it"), "path"),
    (dict(mode="9999"), "mode"),
    (dict(instance="it-inst-file;id"), "instance"),
    (dict(instance="IT-INST-FILE"), "instance"),
    (dict(owner="it;id"), "owner"),
    (dict(owner=-1), "owner"),
    (dict(group="-g"), "group"),
    (dict(directory_mode="0999", parents=True), "directory_mode"),
    (dict(owner="itinstapp", create_owner=True, owner_home="relative"), "owner_home"),
])
def test_bad_input_writes_nothing(container, bad, field):
    res = run_module("lxd_file", args(**bad))
    assert res.failed and field in res["msg"], res
    assert inside("test", "-e", PATH).returncode == 1
    assert inside("test", "-e", "/etc/shadow-it").returncode == 1


def test_src_from_the_managed_host(container, tmp_path):
    src = tmp_path / "app.env"
    src.write_bytes(b"FROM_SRC=1\n")
    path = "/etc/it-inst/from-src.env"
    res = run_module("lxd_file", dict(instance=NAME, path=path, src=str(src), mode="0640"))
    assert not res.failed and res.changed, res
    assert inside("cat", path).stdout == "FROM_SRC=1\n"
    assert not run_module("lxd_file", dict(instance=NAME, path=path, src=str(src), mode="0640")).changed
    res = run_module("lxd_file", dict(instance=NAME, path=path, src=str(src), content="OTHER=2\n"))
    assert res.failed and "mutually exclusive" in res["msg"]


def test_missing_instance_is_a_clear_error():
    res = run_module("lxd_file", args(instance="it-inst-file-missing"))
    assert res.failed and "does not exist" in res["msg"]


def test_named_owner_created_with_the_missing_directories(container):
    """create_owner + parents: what the project role needs to put the env file into a fresh container."""
    user, path = "itinstapp", "/srv/it-inst-owned/conf/app.env"
    base = dict(instance=NAME, path=path, content="A=1\n", owner=user, create_owner=True,
                owner_home="/srv/it-inst-home", parents=True, mode="0600")
    res = run_module("lxd_file", base, check=True)
    assert not res.failed and res.changed and res["owner_created"], res
    assert res["directories_created"] == ["/srv/it-inst-owned", "/srv/it-inst-owned/conf"]
    assert inside("id", user).returncode == 1 and inside("test", "-e", "/srv/it-inst-owned").returncode == 1

    res = run_module("lxd_file", base)
    assert not res.failed and res.changed and res["owner_created"], res
    passwd = inside("getent", "passwd", user).stdout.strip().split(":")
    assert passwd[5:] == ["/srv/it-inst-home", "/bin/sh"] and int(passwd[2]) == res["uid"]
    assert inside("stat", "-c", "%a %U %G", path).stdout.split() == ["600", user, user]
    assert inside("stat", "-c", "%a %U", "/srv/it-inst-owned/conf").stdout.split() == ["755", "root"]
    assert inside("test", "-d", "/srv/it-inst-home").returncode == 0
    assert inside("cat", path).stdout == "A=1\n"

    again = run_module("lxd_file", base)
    assert not again.changed and not again["owner_created"] and again["directories_created"] == []

    res = run_module("lxd_file", dict(base, group="root"))
    assert res.changed and inside("stat", "-c", "%U %G", path).stdout.split() == [user, "root"]

    missing = run_module("lxd_file", dict(base, owner="itinstnobody", create_owner=False))
    assert missing.failed and "owner" in missing["msg"] and "itinstnobody" in missing["msg"]
    assert inside("id", "itinstnobody").returncode == 1

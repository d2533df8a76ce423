"""The callback that keeps built module payloads from one playbook run to the next."""
import os
import shutil
import time

import pytest

from ansible_collections.lxdctl.platform.plugins.callback import ansiballz_cache as cache


@pytest.fixture
def collection(tmp_path):
    """A collections path holding one collection with a module and a module_util."""
    base = tmp_path / "collections"
    root = base / "ansible_collections" / "acme" / "demo" / "plugins"
    (root / "modules").mkdir(parents=True)
    (root / "module_utils").mkdir(parents=True)
    (root / "modules" / "thing.py").write_text("print('thing')\n")
    (root / "module_utils" / "_client.py").write_text("X = 1\n")
    return base, root


def test_fingerprint_is_stable_for_unchanged_sources(collection):
    base, _root = collection
    assert cache.fingerprint([str(base)]) == cache.fingerprint([str(base)])


@pytest.mark.parametrize("changed", ["modules/thing.py", "module_utils/_client.py"])
def test_fingerprint_changes_when_a_module_or_module_util_changes(collection, changed):
    base, root = collection
    before = cache.fingerprint([str(base)])
    path = root / changed
    path.write_text(path.read_text() + "# edited\n")
    assert cache.fingerprint([str(base)]) != before


def test_fingerprint_ignores_files_that_are_not_in_payloads(collection):
    base, root = collection
    before = cache.fingerprint([str(base)])
    (root / "modules" / "README.md").write_text("docs\n")
    (root.parent / "roles").mkdir()
    (root.parent / "roles" / "main.yml").write_text("---\n")
    assert cache.fingerprint([str(base)]) == before


def test_link_points_the_run_cache_at_a_lasting_private_dir(collection, tmp_path):
    base, _root = collection
    local_tmp = tmp_path / "ansible-local-1"
    local_tmp.mkdir()
    root = tmp_path / "home" / ".cache" / "lxdctl" / "ansiballz"
    target = cache.link_run_cache(str(local_tmp), [str(base)], root=str(root))
    assert target == str(root / cache.fingerprint([str(base)]))
    assert os.path.realpath(local_tmp / "ansiballz_cache") == target
    assert os.stat(target).st_mode & 0o777 == 0o700
    # A payload written through the link outlives the run's temp dir.
    (local_tmp / "ansiballz_cache" / "payload").write_text("zip")
    shutil.rmtree(local_tmp)
    assert (root / os.path.basename(target) / "payload").read_text() == "zip"


def test_a_second_run_finds_the_first_runs_payloads(collection, tmp_path):
    base, _root = collection
    root = tmp_path / "cache"
    first, second = tmp_path / "run1", tmp_path / "run2"
    first.mkdir()
    second.mkdir()
    cache.link_run_cache(str(first), [str(base)], root=str(root))
    (first / "ansiballz_cache" / "lxdctl.platform.thing-ZIP_DEFLATED-none").write_text("built once")
    cache.link_run_cache(str(second), [str(base)], root=str(root))
    assert (second / "ansiballz_cache" / "lxdctl.platform.thing-ZIP_DEFLATED-none").read_text() == "built once"


def test_a_cache_others_may_write_to_is_not_used(collection, tmp_path):
    base, _root = collection
    root = tmp_path / "cache"
    root.mkdir()
    os.chmod(root, 0o777)
    local_tmp = tmp_path / "run"
    local_tmp.mkdir()
    assert cache.link_run_cache(str(local_tmp), [str(base)], root=str(root)) is None
    assert not os.path.lexists(local_tmp / "ansiballz_cache")


def test_a_run_cache_that_already_exists_is_left_alone(collection, tmp_path):
    base, _root = collection
    local_tmp = tmp_path / "run"
    (local_tmp / "ansiballz_cache").mkdir(parents=True)
    assert cache.link_run_cache(str(local_tmp), [str(base)], root=str(tmp_path / "cache")) is None
    assert not os.path.islink(local_tmp / "ansiballz_cache")


def test_prune_removes_entries_unused_for_a_week_but_never_the_current_one(tmp_path):
    now = time.time()
    for name, age_days in (("old", 8), ("recent", 2), ("current", 30)):
        (tmp_path / name).mkdir()
        stamp = now - age_days * 24 * 3600
        os.utime(tmp_path / name, (stamp, stamp))
    removed = cache.prune(str(tmp_path), keep="current", now=now)
    assert removed == ["old"]
    assert sorted(os.listdir(tmp_path)) == ["current", "recent"]


def test_real_runs_reuse_the_payloads_built_by_the_first_run(tmp_path, monkeypatch):
    """Two real playbook runs through the CLI's runner on plain Ansible: the second builds no payload."""
    from lxdctl.runner import run_playbook

    monkeypatch.setenv("LXDCTL_ANSIBLE_STRATEGY", "linear")  # Mitogen builds no payload at all

    home = tmp_path / "home"
    home.mkdir()
    extravars = {"noop_wait_seconds": "0", "noop_wait_marker": str(tmp_path / "marker")}
    first = run_playbook("noop_wait", extravars, envvars={"HOME": str(home)})
    assert first.ok, first.failed_msg
    root = home / ".cache" / "lxdctl" / "ansiballz"
    (entry,) = os.listdir(root)
    payloads = {name: os.stat(root / entry / name).st_mtime_ns
                for name in os.listdir(root / entry) if not name.endswith(".lock")}
    assert any("lineinfile" in name for name in payloads) and any("wait_for" in name for name in payloads)

    second = run_playbook("noop_wait", extravars, envvars={"HOME": str(home)})
    assert second.ok, second.failed_msg
    assert os.listdir(root) == [entry]
    assert {name: os.stat(root / entry / name).st_mtime_ns for name in payloads} == payloads
    assert (tmp_path / "marker").read_text().count("end") == 2

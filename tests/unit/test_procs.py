"""The /proc reader: liveness, the tree below a process, killing it whatever its sessions."""
import os
import subprocess
import sys
import time

from ansible_collections.lxdctl.platform.plugins.module_utils import _procs


def _wait_for(check, seconds=10):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_a_zombie_and_a_missing_pid_are_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    # not reaped yet: a zombie, which a lock owner check must not count as alive
    assert _wait_for(lambda: (_procs.stat_fields(child.pid) or ["?"])[0] == "Z")
    assert not _procs.pid_alive(child.pid)
    child.wait()
    assert not _procs.pid_alive(child.pid) and not _procs.pid_alive(0) and not _procs.pid_alive(-1)
    assert _procs.pid_alive(os.getpid())


def test_kill_descendants_reaches_children_in_sessions_of_their_own():
    # a parent whose child starts a grandchild in a new session, as Ansible's workers are
    parent = subprocess.Popen(["sh", "-c", "setsid sleep 300 & sleep 300 & wait"])
    try:
        assert _wait_for(lambda: len(_procs.descendants(parent.pid)) >= 2)
        below = _procs.descendants(parent.pid)
        sessions = {os.getsid(pid) for pid in below}
        assert len(sessions) == 2  # one of them is out of reach of a process-group kill
        killed = _procs.kill_descendants(parent.pid)
        assert set(below) <= set(killed)
        assert _wait_for(lambda: not any(_procs.pid_alive(pid) for pid in below))
        assert parent.pid not in killed  # only what is below it
    finally:
        parent.kill()
        parent.wait()


def test_kill_tree_takes_the_root_too():
    root = subprocess.Popen(["sh", "-c", "sleep 300 & wait"])
    assert _wait_for(lambda: len(_procs.descendants(root.pid)) == 1)
    (child,) = _procs.descendants(root.pid)
    assert set(_procs.kill_tree(root.pid)) == {root.pid, child}
    root.wait(timeout=10)
    assert _wait_for(lambda: not _procs.pid_alive(child))
    assert _procs.children_of(root.pid) == []

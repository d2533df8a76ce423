# -*- coding: utf-8 -*-
"""Processes of this host, read from /proc: liveness, the process tree, killing a subtree.

One reader for every caller (the pipeline stage runner, nginx's workers, lock owners, the
CLI watchdog), so the /proc/<pid>/stat parsing rule lives in one place.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import signal


def stat_fields(pid):
    """The fields of /proc/<pid>/stat after the command name (state first, then ppid, ...), or None.

    The command name in parentheses may hold spaces and parentheses, so the split is after the
    last one."""
    try:
        with open("/proc/%d/stat" % int(pid)) as handle:
            data = handle.read()
    except (IOError, OSError, ValueError):
        return None
    fields = data.rsplit(")", 1)[-1].split()
    return fields if len(fields) > 1 else None


def pid_alive(pid):
    """Whether ``pid`` is a running process on this host (a zombie is not)."""
    if not pid or int(pid) <= 0:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    except OSError:
        return False
    fields = stat_fields(pid)
    # unreadable although kill(0) found it: count it as alive rather than take over its lock
    return fields is None or fields[0] not in ("Z", "X")


def parents():
    """``{pid: ppid}`` of every live process now (zombies and unreadable ones left out)."""
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields and fields[0] not in ("Z", "X"):
                found[int(entry)] = int(fields[1])
    return found


def children_of(pid):
    """The live processes whose parent is ``pid``."""
    return [child for child, parent in parents().items() if parent == pid]


def descendants(pid):
    """Every live process below ``pid``."""
    children = {}
    for child, parent in parents().items():
        children.setdefault(parent, []).append(child)
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except OSError:
        pass  # gone already


def kill_descendants(pid, frozen=None):
    """Freeze every process below ``pid`` until nothing new appears, then kill them all.

    A frozen process cannot fork, and it stays its children's parent, so the walk finds the
    whole subtree, also what was started in sessions or process groups of its own.  Returns the
    pids killed (with ``frozen``, the ones given first)."""
    frozen = list(frozen or [])
    while True:
        new = [p for p in descendants(pid) if p not in frozen]
        if not new:
            break
        for child in new:
            _signal(child, signal.SIGSTOP)
            frozen.append(child)
    for member in frozen:
        _signal(member, signal.SIGKILL)
    return frozen


def kill_tree(pid):
    """Freeze ``pid`` and everything below it, then kill them all.  Returns the pids killed."""
    _signal(pid, signal.SIGSTOP)
    return kill_descendants(pid, frozen=[pid])

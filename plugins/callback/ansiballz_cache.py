# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: ansiballz_cache
type: aggregate
short_description: Keep built module payloads (AnsiballZ) from one playbook run to the next
description:
  - Every ansible-playbook run builds the zipped payload of each module it uses afresh, in a cache
    that lives in the run's own temp dir and dies with it. For a short play of many different
    modules (a project create uses about ten) that rebuild costs 0.13-0.19 s of CPU per module.
  - This plugin points that per-run cache at a directory that outlives the run,
    C(~/.cache/lxdctl/ansiballz/<fingerprint>). The fingerprint covers the ansible-core version, the
    Python version and the size and modification time of every module and module_utils file of the
    collections on the collections path, so any change to a module or its utilities starts a fresh
    cache. Entries unused for a week are removed.
  - The cache holds pickled payloads, so it is used only when it is a directory owned by the
    current user that nobody else may write to; otherwise the plugin does nothing and Ansible
    builds payloads as usual.
  - The lxdctl CLI enables it for its own runs. Plain ansible-playbook and AWX runs are unchanged
    unless they enable it.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options: {}
"""

import hashlib
import os
import shutil
import stat
import sys
import time

from ansible import constants as C
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ANSIBLE_VERSION

PRUNE_AFTER_SECONDS = 7 * 24 * 3600
_PAYLOAD_SOURCE_DIRS = (("plugins", "modules"), ("plugins", "module_utils"))


def default_cache_root():
    return os.path.join(os.path.expanduser("~"), ".cache", "lxdctl", "ansiballz")


def _collection_dirs(collections_paths):
    for base in collections_paths:
        top = os.path.join(base, "ansible_collections")
        if not os.path.isdir(top):
            continue
        for namespace in sorted(os.listdir(top)):
            ns_dir = os.path.join(top, namespace)
            if not os.path.isdir(ns_dir):
                continue
            for name in sorted(os.listdir(ns_dir)):
                yield os.path.join(ns_dir, name)


def fingerprint(collections_paths):
    """A short hash that changes whenever a payload built from these sources could differ."""
    digest = hashlib.sha256()
    digest.update(("ansible-core %s\npython %s\n" % (ANSIBLE_VERSION, sys.version)).encode())
    for collection in _collection_dirs(collections_paths):
        for parts in _PAYLOAD_SOURCE_DIRS:
            top = os.path.join(collection, *parts)
            for dirpath, dirnames, filenames in os.walk(top, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
                for filename in sorted(filenames):
                    if not filename.endswith(".py"):
                        continue
                    path = os.path.join(dirpath, filename)
                    try:
                        st = os.stat(path)
                    except OSError:
                        continue
                    digest.update(("%s %d %d\n" % (path, st.st_size, st.st_mtime_ns)).encode())
    return digest.hexdigest()[:24]


def _private_dir(path):
    """Create ``path`` (0700) if missing; true only if it is ours and nobody else may write to it."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def prune(root, keep, now=None):
    """Remove fingerprint directories under ``root`` unused for a week, never ``keep``."""
    now = time.time() if now is None else now
    removed = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if name == keep or os.path.islink(path) or not os.path.isdir(path):
            continue
        try:
            if now - os.stat(path).st_mtime > PRUNE_AFTER_SECONDS:
                shutil.rmtree(path, ignore_errors=True)
                removed.append(name)
        except OSError:
            continue
    return removed


def link_run_cache(local_tmp, collections_paths, root=None):
    """Point ``<local_tmp>/ansiballz_cache`` at the lasting cache; the lasting dir, or None."""
    root = root or default_cache_root()
    if not (_private_dir(os.path.dirname(root)) and _private_dir(root)):
        return None
    key = fingerprint(collections_paths)
    target = os.path.join(root, key)
    if not _private_dir(target):
        return None
    run_cache = os.path.join(local_tmp, "ansiballz_cache")
    if os.path.lexists(run_cache):
        return None  # payloads were already built into the run's own cache; leave them
    try:
        os.symlink(target, run_cache)
        os.utime(target)  # marks it used, for prune
    except OSError:
        return None
    prune(root, keep=key)
    return target


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lxdctl.platform.ansiballz_cache"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        # Loaded in ansible-playbook before any task runs; the forked workers inherit the link.
        link_run_cache(C.DEFAULT_LOCAL_TMP, C.COLLECTIONS_PATHS)

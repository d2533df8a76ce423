# -*- coding: utf-8 -*-
"""The git client wrapper: git runs with an argument list, no terminal prompt, only the
protocols file, git, http, https and ssh, and never a remote helper (``ext::``, ``fd::``).

Callers check URLs, branches and commits first with the rules of ``_release.py``; a failed
git command raises ``_release.Failure`` with git's last line of output.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.lxdctl.platform.plugins.module_utils._release import ALLOWED_PROTOCOLS, Failure


def git_env():
    env = dict(os.environ)
    env.update(GIT_TERMINAL_PROMPT="0", GIT_ALLOW_PROTOCOL=ALLOWED_PROTOCOLS, GIT_ASKPASS="/bin/false",
               GIT_SSH_COMMAND="ssh -oBatchMode=yes", LC_ALL="C")
    return env


def git(args, what, cwd=None, timeout=300):
    """Run ``git <args>`` and return its stdout, stripped."""
    argv = ["git", "-c", "protocol.ext.allow=never", "-c", "protocol.fd.allow=never"] + list(args)
    try:
        proc = subprocess.run(argv, cwd=cwd, env=git_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise Failure("%s: %s" % (what, exc))
    if proc.returncode != 0:
        raise Failure("%s: %s" % (what, (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["git failed"]))
    return proc.stdout.strip()

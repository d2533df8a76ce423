# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: cli_watchdog
type: aggregate
short_description: End the play when the lxdctl CLI that started it is gone
description:
  - ansible-runner starts ansible-playbook on a pty in a session of its own, so when the lxdctl CLI
    is killed (kill -9, a closed terminal), the play would run on without anyone watching it and
    could hang on its dead terminal while it holds the project lock.
  - With E(LXDCTL_CLI_PID) set (the CLI sets it), this plugin checks every half second that the
    process still exists and, once it is gone, kills every process below the play (its workers run
    in sessions of their own) and the play's own process group, so the run ends the way a crash of
    the whole tree would. The next run then finds the lock's owner dead and takes the lock over at
    once.
  - Without E(LXDCTL_CLI_PID) (plain ansible-playbook, AWX) it does nothing.
version_added: "0.1.0"
author: lxdctl maintainers (!UNKNOWN)
options: {}
"""

import os
import signal
import threading
import time

from ansible.plugins.callback import CallbackBase
from ansible_collections.lxdctl.platform.plugins.module_utils._procs import kill_descendants, pid_alive

POLL_SECONDS = 0.5


def _watch(pid):
    # the same liveness rule as a lock owner's: a killed CLI its parent has not reaped is gone
    while pid_alive(pid):
        time.sleep(POLL_SECONDS)
    # Ansible's workers run in sessions of their own, out of reach of the group kill; on
    # Mitogen one of them would wait forever for its dead multiplexer.
    kill_descendants(os.getpid())
    os.killpg(os.getpgrp(), signal.SIGKILL)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "lxdctl.platform.cli_watchdog"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        try:
            pid = int(os.environ.get("LXDCTL_CLI_PID") or 0)
        except ValueError:
            pid = 0
        # Started only in ansible-playbook itself: forked workers inherit no threads.
        if pid > 1:
            threading.Thread(target=_watch, args=(pid,), name="lxdctl-cli-watchdog", daemon=True).start()

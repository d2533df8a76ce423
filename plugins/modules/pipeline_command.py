#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pipeline_command
short_description: Run the host part of a pipeline stage (lxdctl deploy, the checks) under the stage's timeout and the run's cancel
description:
  - Runs each argument list of O(commands) on the host, one after the other, without a shell, with
    O(environment) added to the module's environment (Ansible's own C(ANSIBLE_*) variables removed, so a
    nested C(lxdctl) runs its own playbook as if started by hand). The first that exits non-zero stops
    the rest unless O(keep_going).
  - What they print goes to the log of the run O(run_id) (live, while they run; C(lxdctl pipeline logs
    --follow) shows it), capped at O(output_cap) bytes per command - the rest is read and dropped, never
    left to block the command.
  - O(timeout) is the wall-clock limit of all the commands together. When it passes, or when the run is
    cancelled meanwhile (C(lxdctl pipeline cancel)), the running command's whole process tree is frozen
    (SIGSTOP, so nothing forks away) and then killed (SIGKILL) - for C(lxdctl deploy) that is the crash a
    deploy is built to survive (its project lock's owner is then dead and the next deploy takes it over at
    once and converges).
  - Records the stage O(stage) as success, failed, timeout or cancelled, with the stage's time since it
    started (module M(lxdctl.platform.pipeline_step) starts the stage's clock).
  - Nothing runs in check mode.
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
options:
  project:
    description: The project of O(run_id).
    type: str
    required: true
  run_id:
    description: The pipeline run whose log gets the output and whose cancel stops the commands.
    type: int
    required: true
  stage:
    description: The stage these commands finish.
    type: str
    required: true
    choices: [build, test, deploy, verify]
  commands:
    description: The commands, each an argument list; the first item is the program (an absolute path).
    type: list
    elements: list
    required: true
  display:
    description: The name the log shows for the program of every command (e.g. C(lxdctl)); empty shows its path.
    type: str
    default: ""
  environment:
    description: Environment variables to add.
    type: dict
    default: {}
  timeout:
    description: Seconds for all the commands together, 1-3600.
    type: int
    default: 600
  keep_going:
    description: Run the next command after one that failed (the stage fails all the same).
    type: bool
    default: false
  output_cap:
    description: Bytes of output kept per command.
    type: int
    default: 65536
"""

EXAMPLES = r"""
- name: Deploy the run's commit
  lxdctl.platform.pipeline_command:
    project: myapp
    run_id: 17
    stage: deploy
    commands:
      - [/usr/local/bin/lxdctl, deploy, myapp, --branch, main, --commit, 0123abcd]
    display: lxdctl
    environment: {LXDCTL_ACTOR: "pipeline run #3"}
    timeout: 600
  register: deployed
"""

RETURN = r"""
status:
  description: success, failed (a command exited non-zero), timeout or cancelled.
  returned: always
  type: str
results:
  description: One C({argv, rc}) per command run (rc null for one that was killed).
  returned: always
  type: list
  elements: dict
output:
  description: What the commands printed (capped), as it was written to the run's log.
  returned: always
  type: str
"""

import os
import subprocess
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _procs, _state
from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_run as records
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

POLL = 0.25
CANCEL_POLL = 1.0
LIVE_EVERY = 2.0
REAP_SECONDS = 15


# --- process trees ----------------------------------------------------------------------
def wait_gone(pids, seconds=REAP_SECONDS):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        alive = _procs.parents()
        if not any(p in alive for p in pids):
            return True
        time.sleep(0.1)
    return False


class Stopped(Exception):
    def __init__(self, reason):
        super(Stopped, self).__init__(reason)
        self.reason = reason


class _Reader:
    """Reads a command's output as it comes: the first ``cap`` bytes are kept, the rest dropped."""

    def __init__(self, stream, cap):
        self.stream = stream
        self.cap = cap
        self.data = bytearray()
        self.dropped = 0
        self.thread = threading.Thread(target=self._loop)
        self.thread.daemon = True
        self.thread.start()

    def _loop(self):
        while True:
            chunk = self.stream.read1(65536) if hasattr(self.stream, "read1") else self.stream.read(65536)
            if not chunk:
                return
            room = self.cap - len(self.data)
            if room > 0:
                self.data.extend(chunk[:room])
            self.dropped += max(len(chunk) - max(room, 0), 0)

    def text(self):
        return bytes(self.data).decode("utf-8", "replace")


class CommandService:
    def __init__(self, module, log):
        self.module = module
        self.params = module.params
        self.log = log
        self.output = ""
        self._polled = 0.0

    def write(self, text, output=False, flush=False):
        self.output += text
        self.log.write(text, output=output, flush=flush)

    def cancelled(self):
        if time.monotonic() - self._polled < CANCEL_POLL:
            return False
        self._polled = time.monotonic()
        return self.log.status() == "cancelled"

    def environment(self):
        env = dict((k, v) for k, v in os.environ.items() if not k.startswith("ANSIBLE_"))
        env.update((str(k), str(v)) for k, v in self.params["environment"].items())
        return env

    def run(self):
        p = self.params
        result = dict(changed=False, status="success", results=[], output="")
        if self.log.status() == "cancelled":
            result["status"] = "cancelled"
            return result
        result["changed"] = bool(p["commands"])
        if self.module.check_mode:
            return result
        deadline = time.monotonic() + p["timeout"]
        env = self.environment()
        try:
            for argv in p["commands"]:
                shown = [p["display"] or argv[0]] + list(argv[1:])
                self.write("$ %s\n" % " ".join(shown), flush=True)
                item = {"argv": list(argv), "rc": None}
                result["results"].append(item)
                item["rc"] = self.run_one(argv, env, deadline)
                if item["rc"] != 0:
                    self.write("exit status %d\n" % item["rc"])
                    result["status"] = "failed"
                    if not p["keep_going"]:
                        break
        except Stopped as exc:
            result["status"] = exc.reason
            if exc.reason == "timeout":
                self.write("\nstage %s stopped: timed out after %d seconds (its commands were killed)\n"
                           % (p["stage"], p["timeout"]))
            else:
                self.write("\nstage %s stopped: the run was cancelled\n" % p["stage"])
        record = self.log.stage(p["stage"], result["status"])
        self.write("stage %s: %s (%.1fs)\n" % (p["stage"], record["status"], record.get("seconds") or 0), flush=True)
        result["output"] = self.output
        return result

    def run_one(self, argv, env, deadline):
        try:
            proc = subprocess.Popen([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, env=env, close_fds=True)
        except OSError as exc:
            raise LxdctlError("Failed to start %s: %s" % (argv[0], exc))
        reader = _Reader(proc.stdout, max(self.params["output_cap"], 1024))
        live = time.monotonic()
        reason = None
        while proc.poll() is None:
            time.sleep(POLL)
            if time.monotonic() > deadline:
                reason = "timeout"
            elif self.cancelled():
                reason = "cancelled"
            elif time.monotonic() - live > LIVE_EVERY:
                live = time.monotonic()
                self.log.live(reader.text())
            if reason:
                pids = _procs.kill_tree(proc.pid)
                proc.wait()
                wait_gone(pids)
                break
        reader.thread.join(5)
        text = reader.text()
        if text and not text.endswith("\n"):
            text += "\n"
        self.write(text, output=True)
        if reader.dropped:
            self.write("[output truncated at %d bytes: %d more dropped]\n" % (len(reader.data), reader.dropped))
        if reason:
            raise Stopped(reason)
        return proc.returncode


def validate(params):
    if not 1 <= params["timeout"] <= 3600:
        raise ValidationError("timeout", "must be 1-3600 seconds", params["timeout"])
    for argv in params["commands"]:
        if not argv or not all(isinstance(a, (str, int)) for a in argv) or not os.path.isabs(str(argv[0])):
            raise ValidationError("commands", "each must be a non-empty argument list starting with an absolute path",
                                  argv)
    for key in params["environment"]:
        if not key or "=" in key or "\0" in key:
            raise ValidationError("environment", "not a variable name", key)


def argument_spec():
    spec = dict(
        project=dict(type=_names.argspec_project_name, required=True),
        run_id=dict(type="int", required=True),
        stage=dict(type="str", required=True, choices=["build", "test", "deploy", "verify"]),
        commands=dict(type="list", elements="list", required=True),
        display=dict(type="str", default=""),
        environment=dict(type="dict", default={}),
        timeout=dict(type="int", default=600),
        keep_going=dict(type="bool", default=False),
        output_cap=dict(type="int", default=65536),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    store = None
    try:
        validate(params)
        store = _state.open_from_params(params)
        log = records.RunLog(store, params["project"], params["run_id"], check_mode=module.check_mode)
        result = CommandService(module, log).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    finally:
        if store is not None:
            store.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()

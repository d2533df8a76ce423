#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pipeline_step
short_description: Run a pipeline stage's commands inside an LXD container, with a timeout and captured output
description:
  - Runs each line of O(commands) in the container O(instance) by C(/bin/sh -c), one after the other,
    in O(workdir) with O(environment), and stops at the first line that exits non-zero.
  - The line reaches the container as an argument of a fixed wrapper script, never as shell text on
    the host. Its output goes through C(head -c) (output past the cap stops the command with
    SIGPIPE) and a copy is read while it runs.
  - O(timeout) is the wall-clock limit of all the lines together; when it passes, or when the run
    O(run_id) is cancelled meanwhile (C(lxdctl pipeline cancel)), the container is stopped by force.
  - With O(run_id), every line, its output and its exit status are appended to the run's log in the
    state store while it runs (C(lxdctl pipeline logs --follow) shows them) and the stage O(stage) is
    recorded; without it the output is only returned.
  - With O(archive), the container is first made ready - it waits for the container's boot to finish,
    pushes the archive in and unpacks it into O(workdir); this does not count against O(timeout).
  - After the lines succeed, O(artifacts) and O(coverage) (paths relative to O(workdir)) are copied
    out of the container into O(artifact_dir)/O(stage) (regular files and directories only).
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
options:
  instance:
    description: The container that runs the lines.
    type: str
    required: true
  commands:
    description: The lines, each run by C(/bin/sh -c) inside the container.
    type: list
    elements: str
    default: []
  environment:
    description: The environment of every line.
    type: dict
    default: {}
  workdir:
    description: The working directory inside the container.
    type: str
    default: /workspace
  timeout:
    description: Seconds for all the lines together, 1-3600.
    type: int
    default: 600
  archive:
    description: A tar archive on the host to unpack into O(workdir) first.
    type: path
  remove_archive:
    description: Remove O(archive) from the host once it is in the container, and its directory when that is then empty.
    type: bool
    default: false
  header:
    description: Text for the run's log before anything else (e.g. where the source came from).
    type: str
    default: ""
  facts:
    description: C(branch) and C(commit) of the run, recorded in it.
    type: dict
    default: {}
  project:
    description: The project of O(run_id).
    type: str
  run_id:
    description: The pipeline run whose log gets the output (0 for none).
    type: int
    default: 0
  stage:
    description: The stage these lines are (recorded in the run); empty for a preparation step.
    type: str
    default: ""
  finish_stage:
    description: Record the stage's outcome when the lines are done; false leaves it running for later tasks.
    type: bool
    default: true
  artifacts:
    description: Paths to copy out after the lines succeed.
    type: list
    elements: str
    default: []
  coverage:
    description: Coverage paths to copy out after the lines succeed.
    type: list
    elements: str
    default: []
  artifact_dir:
    description: The host directory of the run's artifacts (the stage's go in a subdirectory).
    type: path
  environment_record:
    description: The stage's environment (C({name, url})) to record in the run.
    type: dict
    default: {}
  line_cap:
    description: Bytes of output kept per line; a line that writes more is stopped.
    type: int
    default: 65536
"""

EXAMPLES = r"""
- name: Run the test stage
  lxdctl.platform.pipeline_step:
    instance: lxdctl-ci-myapp-3
    project: myapp
    run_id: 17
    stage: test
    commands: [python3 -m unittest -v]
    environment: {CI: "true", PROJECT: myapp}
    timeout: 300
    coverage: [coverage/]
    artifact_dir: /var/lib/lxdctl/pipelines/myapp/3
  register: step
"""

RETURN = r"""
status:
  description: success, failed (a line exited non-zero), timeout or cancelled.
  returned: always
  type: str
rc:
  description: The exit status of the last line run (0 when none ran).
  returned: always
  type: int
failed_command:
  description: The line that failed, or null.
  returned: always
  type: str
output:
  description: What the lines printed (capped), as it was written to the run's log.
  returned: always
  type: str
files:
  description: The files kept, relative to O(artifact_dir).
  returned: always
  type: list
  elements: str
seconds:
  description: How long the lines ran.
  returned: always
  type: float
"""

import io
import os
import shutil
import tarfile
import threading
import time

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd, _names, _state
from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_run as records
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

CI_DIR = "/var/lib/lxdctl-ci"  # lxdctl's own files in the container (not /tmp: the boot cleans it)
LINE_MIN_CAP = 1024
ARTIFACT_CAP = 64 * 1024 * 1024
BOOT_TIMEOUT = 60
POLL = 1.5
# The user's line is "$1" of this fixed text.  Its output goes through a FIFO to head (capped at
# "$2" bytes: endless output then dies of SIGPIPE) and tee (a copy read while it runs).  head and
# tee start before the line, which only begins once head reads: a fork bomb cannot starve them.
WRAPPER = ('rm -f /var/lib/lxdctl-ci/pipe && mkfifo -m 600 /var/lib/lxdctl-ci/pipe || exit 125\n'
           'head -c "$2" </var/lib/lxdctl-ci/pipe | tee /var/lib/lxdctl-ci/out &\n'
           '/bin/sh -c "$1" </dev/null >/var/lib/lxdctl-ci/pipe 2>&1\n'
           'rc=$?\n'
           'wait\n'
           'exit "$rc"\n')
_UNPACK = 'mkdir -p "$1" && tar -xf "$2" -C "$1" && rm -f "$2"'
_PACK = 'cd "$1" && [ -e "$2" ] && tar -cf - -- "$2" | head -c "$3" >/var/lib/lxdctl-ci/artifact.tar'


class Stopped(Exception):
    def __init__(self, reason):
        super(Stopped, self).__init__(reason)
        self.reason = reason


class _Output:
    """The log of the run, or only a buffer when there is no run."""

    def __init__(self, log):
        self.log = log
        self.text = ""

    def write(self, text, output=False, flush=False):
        self.text += text
        if self.log is not None:
            self.log.write(text, output=output, flush=flush)

    def room(self):
        return self.log.room() if self.log is not None else records.LOG_CAP

    def live(self, tail):
        if self.log is not None:
            self.log.live(tail)

    def cancelled(self):
        return self.log is not None and self.log.status() == "cancelled"


class StepService:
    def __init__(self, module, client, log):
        self.module = module
        self.client = client
        self.params = module.params
        self.name = self.params["instance"]
        self.log = log
        self.out = _Output(log)

    def run(self):
        p = self.params
        result = dict(changed=False, status="success", rc=0, failed_command=None, output="", files=[], seconds=0.0)
        if self.out.cancelled():
            result["status"] = "cancelled"
            return result
        ran = bool(p["commands"] or p["archive"] or p["artifacts"] or p["coverage"])
        result["changed"] = ran
        if self.module.check_mode:
            return result
        if p["header"]:
            self.out.write(p["header"])
        if self.log is not None:
            self.log.facts.update((k, v) for k, v in p["facts"].items() if k in ("branch", "commit"))
        if p["archive"]:
            self.prepare(p["archive"])
        started = time.time()
        deadline = time.monotonic() + p["timeout"]
        if p["stage"]:
            if self.log is not None:
                self.log.stage(p["stage"], "running", started=started)
            self.out.write("\n== stage %s (timeout %ds) ==\n" % (p["stage"], p["timeout"]), flush=True)
        try:
            for line in p["commands"]:
                self.out.write("$ %s\n" % line)
                rc = self.exec_line(line, deadline)
                result["rc"] = rc
                if rc != 0:
                    self.out.write("exit status %d\n" % rc)
                    result.update(status="failed", failed_command=line)
                    break
            if result["status"] == "success":
                if p["environment_record"] and self.log is not None:
                    self.log.facts["environment"] = dict(p["environment_record"])
                    self.out.write("environment: %s\n" % " ".join("%s=%s" % kv for kv in sorted(p["environment_record"].items())))
                result["files"] = self.collect()
        except Stopped as exc:
            result["status"] = exc.reason
            if exc.reason == "timeout":
                self.out.write("\nstage %s stopped: timed out after %d seconds (the run container was killed)\n"
                               % (p["stage"] or "preparation", p["timeout"]))
            else:
                self.out.write("\nstage %s stopped: the run was cancelled\n" % (p["stage"] or "preparation"))
        result["seconds"] = round(time.time() - started, 1)
        if p["stage"] and self.log is not None and (p["finish_stage"] or result["status"] != "success"):
            record = self.log.stage(p["stage"], result["status"])
            self.out.write("stage %s: %s (%.1fs)\n" % (p["stage"], record["status"], record.get("seconds") or 0))
        if self.log is not None:
            self.log.flush()
        result["output"] = self.out.text
        return result

    # the container ---------------------------------------------------------------------
    def prepare(self, archive):
        self.wait_booted()
        rc, out, err = _lxd.instance_exec(self.client, self.name, ["mkdir", "-p", "-m", "700", CI_DIR])
        if rc != 0:
            raise LxdctlError("Failed to prepare %s: %s" % (self.name, (err or out).decode("utf-8", "replace")))
        inside = CI_DIR + "/source.tar"
        try:
            with open(archive, "rb") as handle:
                _lxd.write_file(self.client, self.name, inside, handle.read(), mode=0o600, uid=0, gid=0)
        except (IOError, OSError) as exc:
            raise LxdctlError("Failed to read the source archive %s: %s" % (archive, exc))
        if self.params["remove_archive"]:
            os.unlink(archive)
            try:
                os.rmdir(os.path.dirname(archive))
            except OSError:
                pass  # something else is in it: not ours to remove
        rc, out, err = _lxd.instance_exec(self.client, self.name, ["/bin/sh", "-c", _UNPACK, "x", self.params["workdir"],
                                                                   inside])
        if rc != 0:
            raise LxdctlError("Failed to unpack the source in %s: %s" % (self.name, (err or out).decode("utf-8", "replace")))

    def wait_booted(self):
        """Until the container's systemd finished booting: its tmpfiles must not clean up in the
        middle of a build.  Images without systemd go on at once."""
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                rc, out, _err = _lxd.instance_exec(self.client, self.name, ["systemctl", "is-system-running", "--wait"])
            except LxdctlError:
                return
            if rc in (126, 127) or out.decode("utf-8", "replace").strip() in ("running", "degraded", "maintenance",
                                                                              "stopping"):
                return
            time.sleep(0.2)

    def kill(self):
        try:
            _lxd.set_instance_state(_lxd.connect(self.params), self.name, "stop", timeout=5, force=True)
        except LxdctlError:
            pass  # already stopped

    def wait(self, thread, deadline):
        polled = time.monotonic()
        while thread.is_alive():
            thread.join(0.5)
            if not thread.is_alive():
                break
            reason = None
            if time.monotonic() > deadline:
                reason = "timeout"
            elif time.monotonic() - polled > POLL:
                polled = time.monotonic()
                if self.out.cancelled():
                    reason = "cancelled"
                else:
                    self.show_live()
            if reason:
                self.kill()
                thread.join(30)
                raise Stopped(reason)

    def show_live(self):
        if self.log is None:
            return
        try:
            found = _lxd.read_file(self.client, self.name, CI_DIR + "/out")
        except LxdctlError:
            return
        if found:
            self.out.live(found["content"].decode("utf-8", "replace"))

    def exec_line(self, line, deadline):
        cap = max(min(self.params["line_cap"], self.out.room()), LINE_MIN_CAP)
        result = {}
        argv = ["/bin/sh", "-c", WRAPPER, "lxdctl-step", line, str(cap + 1)]

        def work():
            try:
                client = _lxd.connect(self.params)  # its own connection: the main thread polls meanwhile
                result["value"] = _lxd.instance_exec(client, self.name, argv, environment=self.params["environment"],
                                                     cwd=self.params["workdir"])
            except Exception as exc:  # noqa: BLE001 - re-raised in the main thread
                result["error"] = exc

        thread = threading.Thread(target=work)
        thread.daemon = True
        thread.start()
        self.wait(thread, deadline)
        if "error" in result:
            raise LxdctlError(getattr(result["error"], "msg", None) or str(result["error"]))
        rc, out, _err = result["value"]
        text = out[:cap].decode("utf-8", "replace")
        if text and not text.endswith("\n"):
            text += "\n"
        self.out.write(text, output=True)
        if len(out) > cap:
            self.out.write("[output truncated at %d bytes: the command was stopped (SIGPIPE)]\n" % cap)
        return rc

    # artifacts -------------------------------------------------------------------------
    def collect(self):
        p = self.params
        paths = [("artifacts", x) for x in p["artifacts"]] + [("coverage", x) for x in p["coverage"]]
        kept = []
        for kind, path in paths:
            rc, _out, _err = _lxd.instance_exec(self.client, self.name, ["/bin/sh", "-c", _PACK, "x", p["workdir"], path,
                                                                         str(ARTIFACT_CAP + 1)])
            if rc != 0:
                self.out.write("%s %s: not found, nothing kept\n" % (kind, path))
                continue
            found = _lxd.read_file(self.client, self.name, CI_DIR + "/artifact.tar")
            data = found["content"] if found else b""
            if len(data) > ARTIFACT_CAP:
                self.out.write("%s %s: larger than %d bytes, not kept\n" % (kind, path, ARTIFACT_CAP))
                continue
            dest = os.path.join(p["artifact_dir"], p["stage"] or "files")
            os.makedirs(dest, mode=0o750, exist_ok=True)
            files = [os.path.join(p["stage"] or "files", f) for f in extract(data, dest)]
            kept.extend(files)
            if self.log is not None:
                self.log.facts["files"].extend(files)
                self.log.facts.setdefault(kind, []).append(os.path.join(p["stage"] or "files", path))
            self.out.write("%s %s: %d file%s kept in %s\n" % (kind, path, len(files), "" if len(files) == 1 else "s", dest))
        return kept


def extract(data, dest):
    """Unpack a tar the container made: regular files and directories only, inside ``dest``."""
    names = []
    root = os.path.realpath(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(root, member.name))
            if member.name.startswith("/") or not (target == root or target.startswith(root + os.sep)):
                continue
            if member.isdir():
                os.makedirs(target, mode=0o750, exist_ok=True)
            elif member.isfile():
                os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
                source = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(source, handle)
                names.append(os.path.relpath(target, root))
    return sorted(names)


def validate(params):
    if not 1 <= params["timeout"] <= 3600:
        raise ValidationError("timeout", "must be 1-3600 seconds", params["timeout"])
    if not params["workdir"].startswith("/"):
        raise ValidationError("workdir", "must be an absolute path", params["workdir"])
    if params["run_id"] and not params["project"]:
        raise ValidationError("project", "is required with run_id")
    if (params["artifacts"] or params["coverage"]) and not params["artifact_dir"]:
        raise ValidationError("artifact_dir", "is required with artifacts or coverage")
    for path in params["artifacts"] + params["coverage"]:
        if path.startswith("/") or ".." in path.split("/") or not path.strip():
            raise ValidationError("artifacts", "paths are relative to the workdir, without ..", path)
    for key, value in params["environment"].items():
        if not isinstance(value, str) or "\x00" in value:
            raise ValidationError("environment.%s" % key, "must be a string without NUL characters")
    if params["stage"]:
        from ansible_collections.lxdctl.platform.plugins.module_utils._pipeline_spec import STAGES

        if params["stage"] not in STAGES:
            raise ValidationError("stage", "must be one of %s" % ", ".join(STAGES), params["stage"])


def argument_spec():
    spec = dict(
        instance=dict(type=_names.argspec_instance_name, required=True),
        commands=dict(type="list", elements="str", default=[]),
        environment=dict(type="dict", default={}),
        workdir=dict(type="str", default="/workspace"),
        timeout=dict(type="int", default=600),
        archive=dict(type="path"),
        remove_archive=dict(type="bool", default=False),
        header=dict(type="str", default=""),
        facts=dict(type="dict", default={}),
        project=dict(type=_names.argspec_project_name),
        run_id=dict(type="int", default=0),
        stage=dict(type="str", default=""),
        finish_stage=dict(type="bool", default=True),
        artifacts=dict(type="list", elements="str", default=[]),
        coverage=dict(type="list", elements="str", default=[]),
        artifact_dir=dict(type="path"),
        environment_record=dict(type="dict", default={}),
        line_cap=dict(type="int", default=65536),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    store = None
    try:
        validate(params)
        client = _lxd.connect(params)
        log = None
        if params["run_id"]:
            store = _state.open_from_params(params)
            log = records.RunLog(store, params["project"], params["run_id"], check_mode=module.check_mode)
        result = StepService(module, client, log).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    finally:
        if store is not None:
            store.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()

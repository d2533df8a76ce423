#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: app_release
short_description: Build, start, stop and prune an app release in a project container
description:
  - Works on a project container through the LXD API (file push and exec); nothing is copied
    into the container to run there.
  - V(ready) makes sure the project's second (blue-green) container exists as a copy of
    O(copy_from), runs, has booted and has O(copy_from)'s current app env file.
  - V(built) unpacks the release archive (from M(lxdctl.platform.app_source)) under
    C(/srv/app/releases/<version>) and builds it as the non-root C(app) user by runtime (node
    C(npm ci)/C(npm install) and C(npm run build); python a venv and pip; go C(go build)), runs
    its tests with O(test), writes its start script (O(start_command), a Procfile C(web:)
    line, the package.json C(start) script, or the go binary) and a snapshot of the app env,
    so a rollback brings back code and env.
  - V(started) points a slot (systemd template unit C(lxdctl-app@blue|green), C(User=app),
    C(Restart=on-failure), journal) at a release, restarts it and checks its health over HTTP
    from the host. A start command that exits is detected at once; on failure the unit is
    stopped and the message carries the app's last log lines.
  - V(stopped) stops a slot, after O(delay) seconds (a systemd timer) so requests in flight end.
  - V(pruned) removes all but the newest O(keep) releases, never one in O(protect) or one a
    slot points at.
version_added: "0.2.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
options:
  instance:
    description: The project container.
    type: str
    required: true
  state:
    description: What to do with the release (see the description).
    type: str
    choices: [ready, built, started, stopped, pruned]
    required: true
  copy_from:
    description: With V(ready), the container to copy (the project's primary container).
    type: str
  version:
    description: The release, e.g. V(v3). Required with V(built) and V(started).
    type: str
  archive:
    description: With V(built), the tar archive of the code on the managed host.
    type: path
  remove_archive:
    description: With V(built), remove the archive on the managed host once it is pushed (and its directory, when that is then empty).
    type: bool
    default: false
  runtime:
    description: With V(built), the runtime (detected from the code by M(lxdctl.platform.app_source)).
    type: str
    choices: [node, python, go]
  commit:
    description: With V(built), the git commit, recorded in the release's build info.
    type: str
    default: ""
  start_command:
    description: With V(built), the start command when the code has no Procfile C(web:) line or package.json C(start) script.
    type: str
    default: ""
  build:
    description: With V(built), run the build.
    type: bool
    default: true
  test:
    description: With V(built), run the project's tests; a failure stops the deploy.
    type: bool
    default: false
  slot:
    description: With V(started), V(blue) or V(green); with V(stopped) also V(all).
    type: str
  port:
    description: With V(started), the port the slot's app listens on (C(PORT)).
    type: int
  health_path:
    description: With V(started), the path of the HTTP health check.
    type: str
    default: /health
  health_timeout:
    description: With V(started), seconds the release has to answer its health check.
    type: int
    default: 30
  exclusive:
    description: With V(started), stop and disable the other slot first (a container's first release).
    type: bool
    default: false
  delay:
    description: With V(stopped), seconds before the slot stops.
    type: float
    default: 0
  keep:
    description: With V(pruned), how many of the newest releases stay (at least 2).
    type: int
    default: 5
  protect:
    description: With V(pruned), releases that stay whatever their age (what serves and what served before).
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Build release v4 from the fetched archive
  lxdctl.platform.app_release:
    instance: lxdctl-myapp
    state: built
    version: v4
    archive: "{{ _src.archive }}"
    runtime: "{{ _src.runtime }}"
    test: true

- name: Start it in the green slot and check its health
  lxdctl.platform.app_release:
    instance: lxdctl-myapp
    state: started
    version: v4
    slot: green
    port: 3001
  register: _started

- name: Stop the blue slot a second later
  lxdctl.platform.app_release:
    instance: lxdctl-myapp
    state: stopped
    slot: blue
    delay: 1

- name: Keep the newest five releases
  lxdctl.platform.app_release:
    instance: lxdctl-myapp
    state: pruned
    keep: 5
    protect: [v4, v3]
"""

RETURN = r"""
address:
  description: With V(started), the container's IPv4 address the release answers on.
  returned: when state is started
  type: str
health:
  description: With V(started), the health check's last answer, e.g. C(HTTP 200).
  returned: when state is started
  type: str
build:
  description:
    - With V(built), the release's build info (runtime, start command and where it came from, the steps with their seconds).
    - C(leftover_builds_ended) counts the processes of earlier builds, left running by a killed deploy, that this build ended first.
  returned: when state is built
  type: dict
pruned:
  description: With V(pruned), the releases removed, oldest first.
  returned: when state is pruned
  type: list
  elements: str
removed:
  description: With V(pruned), the same as C(container)/C(release) pairs, the way the deployments table records them.
  returned: when state is pruned
  type: list
  elements: dict
created:
  description: With V(ready), whether the container was made now.
  returned: when state is ready
  type: bool
"""

import json
import os
import tarfile
import time

try:
    from urllib.request import urlopen
    from urllib.error import HTTPError
except ImportError:  # pragma: no cover - Python 2 is not supported by the collection
    urlopen = HTTPError = None

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils import _release as rel
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

# root's directory (0711), so the app user can read its archive there but cannot plant links
ARCHIVE_IN_CONTAINER = "/var/lib/lxdctl/deploy/release.tar"
BUILD_TIMEOUT = 900
# Fixed scripts run with their inputs as positional parameters ("$1" ...), which were checked
# first (slot names, release directories); no input is ever part of the script text.
# Enabling is the unit's WantedBy link made by hand: `systemctl enable` reloads systemd, which
# costs half a second, and a rollback's speed is mostly such waits.
_POINT_SLOT = r"""
slot=$1 other=$2 exclusive=$3 rel=$4 slot_env=$5
wants=/etc/systemd/system/multi-user.target.wants
[ -x "$rel/.lxdctl/start" ] || exit 3
systemctl stop "lxdctl-stop-$slot.timer" "lxdctl-stop-$slot.service" 2>/dev/null
systemctl reset-failed "lxdctl-stop-$slot.timer" "lxdctl-stop-$slot.service" "lxdctl-app@$slot" 2>/dev/null
if [ "$exclusive" = yes ]; then rm -f "$wants/lxdctl-app@$other.service"; systemctl stop "lxdctl-app@$other"; fi
mkdir -p /etc/lxdctl/slots /srv/app/slots "$wants" || exit 1
printf '%s' "$slot_env" > "/etc/lxdctl/slots/$slot.env" || exit 1
ln -sfnT "$rel" "/srv/app/slots/$slot" || exit 1
ln -sfn /etc/systemd/system/lxdctl-app@.service "$wants/lxdctl-app@$slot.service" || exit 1
exec systemctl restart "lxdctl-app@$slot"
"""
# An app is asked for its health often (a refused connection costs nothing) and systemd for the
# unit's state seldom (a round trip through LXD): a rollback waits less for a release that is
# up, and a start command that exits is still caught within half a second.
HEALTH_POLL_INTERVAL = 0.05
UNIT_CHECK_INTERVAL = 0.5
_STOP_SLOT = r"""
slot=$1 delay_ms=$2
systemctl stop "lxdctl-stop-$slot.timer" "lxdctl-stop-$slot.service" 2>/dev/null
systemctl reset-failed "lxdctl-stop-$slot.timer" "lxdctl-stop-$slot.service" 2>/dev/null
rm -f "/etc/systemd/system/multi-user.target.wants/lxdctl-app@$slot.service"
if [ "$delay_ms" -gt 0 ]; then
  exec systemd-run --quiet --collect --unit "lxdctl-stop-$slot" --on-active="${delay_ms}ms" \
    --timer-property=AccuracySec=10ms systemctl stop "lxdctl-app@$slot"
fi
exec systemctl stop "lxdctl-app@$slot"
"""
# Every build step carries this variable.  LXD runs a command to its end even when the deploy
# that started it was killed, so the next build ends such leftovers by this mark before its own.
BUILD_MARK = "LXDCTL_BUILD_OF"
_END_LEFTOVER_BUILDS = r"""
mark=$1 ended=0
for dir in /proc/[0-9]*; do
  pid=${dir#/proc/}
  [ "$pid" = "$$" ] && continue
  if tr '\0' '\n' < "$dir/environ" 2>/dev/null | grep -q "^$mark="; then
    kill -KILL "$pid" 2>/dev/null && ended=$((ended + 1))
  fi
done
echo "$ended"
"""
_UNIT_STATE = ["systemctl", "show", "-p", "ActiveState", "-p", "NRestarts", "-p", "ExecMainStatus"]


class ReleaseService(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.p = module.params
        self.name = self.p["instance"]

    # --- container helpers ------------------------------------------------------------
    def exec_(self, argv, env=None, cwd=None, check=True, what=None, as_app=False, timeout=None):
        command = list(argv)
        if as_app:
            command = ["setpriv", "--reuid=app", "--regid=app", "--init-groups", "--"] + command
        if timeout:
            command = ["timeout", "--kill-after=10", str(int(timeout))] + command
        rc, out, err = _lxd.instance_exec(self.client, self.name, command, environment=env, cwd=cwd)
        out, err = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        if check and rc != 0:
            shown = what or " ".join(argv)
            if timeout and rc in (124, 137):
                raise rel.Failure("%s timed out after %ds" % (shown, timeout))
            raise rel.Failure("%s failed (exit %d):\n%s" % (shown, rc, rel.tail(out + ("\n" if out else "") + err)))
        return rc, out, err

    def read(self, path):
        found = _lxd.read_file(self.client, self.name, path)
        return None if found is None or found["type"] != "file" else found["content"].decode("utf-8", "replace")

    def write(self, path, text, mode=0o644, uid=0, gid=0):
        _lxd.write_file(self.client, self.name, path, text.encode("utf-8"), mode=mode, uid=uid, gid=gid)

    def app_ids(self):
        _, out, _ = self.exec_(["id", "-u", "app"], what="id app")
        uid = int(out.strip())
        _, out, _ = self.exec_(["id", "-g", "app"], what="id app")
        return uid, int(out.strip())

    def wait_booted(self, timeout=60):
        """A freshly started container: wait until systemd has finished booting."""
        deadline = time.monotonic() + timeout
        while True:
            _, out, _ = self.exec_(["systemctl", "is-system-running"], check=False)
            if out.strip() in ("running", "degraded"):
                return
            if time.monotonic() > deadline:
                raise LxdctlError("systemd in %s is still %r after %ds" % (self.name, out.strip(), timeout))
            time.sleep(0.2)

    def unit_state(self, slot):
        _, out, _ = self.exec_(_UNIT_STATE + [rel.UNIT_NAME + slot], check=False)
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, slot, lines=30):
        _, out, _ = self.exec_(["journalctl", "-u", rel.UNIT_NAME + slot, "-n", str(lines), "--no-pager", "-o", "cat"],
                               check=False)
        return rel.tail(out, lines)

    def slot_links(self):
        _, out, _ = self.exec_(["readlink", "%s/blue" % rel.SLOT_DIR, "%s/green" % rel.SLOT_DIR], check=False)
        return [os.path.basename(line.strip()) for line in out.splitlines() if line.strip()]

    # --- states ------------------------------------------------------------------------
    def run(self):
        if _lxd.get_instance(self.client, self.name) is None and self.p["state"] != "ready":
            raise LxdctlError("Instance %s does not exist" % self.name)
        return getattr(self, self.p["state"])()

    def ready(self):
        source = self.p["copy_from"]
        if not source:
            raise LxdctlError("copy_from: needed with state=ready (the project's primary container)")
        _names.instance_name(source, "copy_from")
        record = _lxd.get_instance(self.client, self.name)
        created = record is None
        started = created or record.get("status") != "Running"
        if self.module.check_mode:
            return dict(changed=created or started, created=created)
        if created:
            primary = _lxd.get_instance(self.client, source)
            if primary is None:
                raise LxdctlError("Instance %s (copy_from) does not exist" % source)
            # LXD gives a copy the default profile unless told otherwise: the primary's own
            # profiles, config (without LXD's volatile keys) and devices go along, as `lxc copy` does
            config = _lxd.managed_config(primary.get("config"))
            config["user.lxdctl.role"] = "green"
            _lxd.create_instance(self.client, self.name, {"type": "copy", "source": source},
                                 profiles=primary.get("profiles") or [], config=config,
                                 devices=primary.get("devices") or {})
        if started:
            _lxd.set_instance_state(self.client, self.name, "start", timeout=120)
        self.wait_booted()
        env = _lxd.read_file(self.client, source, rel.APP_ENV)
        if env is None:
            raise LxdctlError("%s has no %s: run `lxdctl create` for the project again" % (source, rel.APP_ENV))
        uid, gid = self.app_ids()
        # the primary's env is the one `lxdctl env` writes; the copy gets it every time
        _lxd.delete_file(self.client, self.name, rel.APP_ENV)
        _lxd.write_file(self.client, self.name, rel.APP_ENV, env["content"], mode=0o600, uid=uid, gid=gid)
        return dict(changed=True, created=created, diff=dict(before={"exists": not created}, after={"exists": True}))

    def built(self):
        p = self.p
        version = rel.check_version(p["version"])
        if not p["archive"] or not p["runtime"]:
            raise LxdctlError("archive and runtime: both needed with state=built")
        rel.one_line(p["start_command"], "start_command")
        target = rel.release_dir(version)
        with tarfile.open(p["archive"]) as tar:
            files = sorted(set(m.name.split("/", 1)[0] for m in rel.safe_members(tar, "/nonexistent/release")))
            texts = {}
            for name in ("package.json", "requirements.txt", "Procfile"):
                try:
                    member = tar.getmember(name)
                    texts[name] = tar.extractfile(member).read().decode("utf-8", "replace") if member.isfile() else None
                except KeyError:
                    texts[name] = None
        runtime = rel.detect_runtime(files, p["runtime"]) or p["runtime"]
        steps = rel.build_steps(runtime, files, texts["package.json"], texts["requirements.txt"], p["build"], p["test"])
        command, origin = rel.start_command(runtime, texts["Procfile"], texts["package.json"], p["start_command"])
        if not command:
            raise rel.Failure("no start command: add a Procfile with a 'web:' line%s, or set deploy_start_command"
                              % (" or a package.json start script" if runtime == "node" else ""))
        if runtime == "go" and origin == "go build" and not p["build"]:
            raise rel.Failure("no start command: the go binary was not built (deploy with --build) and there is no Procfile")
        if self.module.check_mode:
            return dict(changed=True, build=dict(version=version, runtime=runtime, start_command=command))
        self.wait_booted()
        _, out, _ = self.exec_(["sh", "-c", _END_LEFTOVER_BUILDS, "lxdctl-end-builds", BUILD_MARK],
                               what="ending builds a killed deploy left running")
        leftovers = int(out.strip() or 0)
        uid, gid = self.app_ids()
        with open(p["archive"], "rb") as handle:
            data = handle.read()
        if p["remove_archive"]:
            remove_archive(p["archive"])
        self.exec_(["rm", "-rf", "--", target], what="removing an old %s" % target)
        self.exec_(["install", "-d", "-m", "0711", os.path.dirname(ARCHIVE_IN_CONTAINER)], what="making the upload directory")
        self.exec_(["install", "-d", "-o", "app", "-g", "app", rel.APP_ROOT, rel.RELEASES, target,
                    target + "/" + rel.META, target + "/" + rel.META + "/bin"], what="making %s" % target)
        _lxd.write_file(self.client, self.name, ARCHIVE_IN_CONTAINER, data, mode=0o600, uid=uid, gid=gid)
        try:
            # members were checked above; unpacked as the app user, so it owns every file
            self.exec_(["tar", "-xf", ARCHIVE_IN_CONTAINER, "-C", target, "--no-same-owner", "--no-same-permissions"],
                       as_app=True, what="unpacking release %s" % version)
        finally:
            _lxd.delete_file(self.client, self.name, ARCHIVE_IN_CONTAINER)
        app_env = self.read(rel.APP_ENV) or ""
        env = dict(rel.build_env(target, app_env), **{BUILD_MARK: version})
        done = []
        for argv, what in steps:
            started = time.monotonic()
            self.exec_(argv, env=env, cwd=target, as_app=True, what=what, timeout=BUILD_TIMEOUT)
            done.append(dict(step=what, seconds=round(time.monotonic() - started, 2)))
        meta = target + "/" + rel.META
        self.write(meta + "/start", rel.start_script(version, origin, target, env["PATH"], command), 0o755, uid, gid)
        self.write(meta + "/release.env", rel.env_snapshot(app_env, version), 0o600, uid, gid)
        info = dict(version=version, runtime=runtime, start_command=command, start_origin=origin,
                    commit=p["commit"] or "", steps=done, leftover_builds_ended=leftovers,
                    built_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        self.write(meta + "/release.json", json.dumps(info, sort_keys=True), 0o644, uid, gid)
        return dict(changed=True, build=info, diff=dict(before={"release": None}, after={"release": target}))

    def started(self):
        p = self.p
        version, slot = rel.check_version(p["version"]), rel.check_slot(p["slot"])
        rel.check_health_path(p["health_path"])
        _names.port(p["port"], "port")
        target = rel.release_dir(version)
        diff = dict(before={"slot": slot}, after={"slot": slot, "release": version})
        if self.module.check_mode:
            return dict(changed=True, address="", health="not checked (check mode)", diff=diff)
        if self.read(rel.UNIT_PATH) != rel.unit_text():
            self.write(rel.UNIT_PATH, rel.unit_text())
            self.exec_(["systemctl", "daemon-reload"])
        # one round trip: a rollback's speed is mostly the number of them
        rc, out, err = self.exec_(["sh", "-c", _POINT_SLOT, "lxdctl-point-slot", slot, rel.other(slot),
                                   "yes" if p["exclusive"] else "no", target, rel.slot_env(slot, p["port"])],
                                  check=False)
        if rc == 3:
            raise rel.Failure("release %s is not in %s (no %s/%s/start): it was pruned or never built"
                              % (version, self.name, target, rel.META))
        if rc != 0:
            raise rel.Failure("starting %s%s failed (exit %d):\n%s" % (rel.UNIT_NAME, slot, rc, rel.tail(out + err)))
        address = self.address()
        url = "http://%s:%d%s" % (address, p["port"], p["health_path"])
        deadline = time.monotonic() + p["health_timeout"]
        last = "not checked"
        unit_checked = time.monotonic()
        while True:
            ok, last = health(url, timeout=min(2.0, max(0.2, deadline - time.monotonic())))
            if ok:
                break
            now = time.monotonic()
            if now < deadline and now - unit_checked < UNIT_CHECK_INTERVAL:
                time.sleep(HEALTH_POLL_INTERVAL)
                continue
            unit_checked = now
            state = self.unit_state(slot)
            exited = state.get("ActiveState") in ("failed", "inactive") or int(state.get("NRestarts") or 0) > 0
            if exited or time.monotonic() >= deadline:
                logs = self.journal(slot)
                self.exec_(["sh", "-c", _STOP_SLOT, "lxdctl-stop-slot", slot, "0"], check=False)
                why = ("the start command exited (status %s)" % state.get("ExecMainStatus", "?")) if exited else \
                    "no healthy answer within %ss (last: %s)" % (p["health_timeout"], last)
                raise rel.Failure("release %s failed its health check on %s: %s; traffic was not switched. "
                                  "Last app log lines:\n%s" % (version, url, why, logs or "(none)"))
            time.sleep(HEALTH_POLL_INTERVAL)
        return dict(changed=True, address=address, port=p["port"], slot=slot, version=version, health=last, url=url,
                    diff=diff)

    def address(self):
        return _lxd.wait_for_ipv4(self.client, self.name, timeout=30, interval=0.2)["ipv4"][0]

    def stopped(self):
        slots = rel.SLOTS if self.p["slot"] == "all" else (rel.check_slot(self.p["slot"]),)
        delay_ms = max(0, int(float(self.p["delay"]) * 1000))
        if not self.module.check_mode:
            for slot in slots:
                self.exec_(["sh", "-c", _STOP_SLOT, "lxdctl-stop-slot", slot, str(delay_ms)],
                           what="stopping %s%s" % (rel.UNIT_NAME, slot))
        return dict(changed=True, stopped=list(slots), delay=self.p["delay"])

    def pruned(self):
        protect = [rel.check_version(v) for v in self.p["protect"] if v]
        _, out, _ = self.exec_(["ls", "-1", rel.RELEASES], check=False)
        present = [line.strip() for line in out.splitlines() if rel.VERSION_RE.match(line.strip())]
        gone = rel.releases_to_prune(present, self.p["keep"], protect + self.slot_links())
        if gone and not self.module.check_mode:
            self.exec_(["rm", "-rf", "--"] + [rel.release_dir(v) for v in gone], what="pruning releases")
        return dict(changed=bool(gone), pruned=gone, removed=[dict(container=self.name, release=v) for v in gone],
                    diff=dict(before={"releases": sorted(present, key=rel.version_number)},
                              after={"releases": sorted((v for v in present if v not in gone), key=rel.version_number)}))


def remove_archive(path):
    """The archive, and its directory when that is then empty (app_source's private work dir)."""
    try:
        os.unlink(path)
        os.rmdir(os.path.dirname(path))
    except OSError:
        pass


def health(url, timeout):
    try:
        resp = urlopen(url, timeout=timeout)
        try:
            return 200 <= resp.status < 400, "HTTP %d" % resp.status
        finally:
            resp.close()
    except HTTPError as exc:
        return False, "HTTP %d" % exc.code
    except Exception as exc:  # noqa: BLE001 - any failure means not healthy yet
        return False, str(getattr(exc, "reason", exc))


def argument_spec():
    spec = dict(
        instance=dict(type=_names.argspec_instance_name, required=True),
        state=dict(type="str", required=True, choices=["ready", "built", "started", "stopped", "pruned"]),
        copy_from=dict(type="str"),
        version=dict(type="str"),
        archive=dict(type="path"),
        remove_archive=dict(type="bool", default=False),
        runtime=dict(type="str", choices=list(rel.RUNTIMES)),
        commit=dict(type="str", default=""),
        start_command=dict(type="str", default=""),
        build=dict(type="bool", default=True),
        test=dict(type="bool", default=False),
        slot=dict(type="str"),
        port=dict(type="int"),
        health_path=dict(type="str", default="/health"),
        health_timeout=dict(type="int", default=30),
        exclusive=dict(type="bool", default=False),
        delay=dict(type="float", default=0),
        keep=dict(type="int", default=rel.DEFAULT_KEEP_RELEASES),
        protect=dict(type="list", elements="str", default=[]),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           required_if=[("state", "built", ("version", "archive", "runtime")),
                                        ("state", "started", ("version", "slot", "port")),
                                        ("state", "stopped", ("slot",)),
                                        ("state", "ready", ("copy_from",))])
    try:
        if module.params["health_timeout"] < 1:
            raise LxdctlError("health_timeout: must be at least 1 second, got %d" % module.params["health_timeout"])
        client = _lxd.connect(module.params)
        result = ReleaseService(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

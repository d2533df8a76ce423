#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: daemon
short_description: Start, stop, restart or reload a platform daemon, with or without systemd
description:
  - Detects whether systemd is PID 1. Without it, the daemon is spawned detached (new
    session, output appended to C(/var/log/lxdctl/<name>.log)) and its pid written to
    O(pidfile); with it, the distribution unit O(unit) is driven through C(systemctl), or a
    unit C(lxdctl-<name>.service) running O(argv) is written and started.
  - Under systemd the unit is also enabled (it starts at boot) and restarted by systemd when it
    fails (C(Restart=on-failure); a distribution unit gets the drop-in
    C(/etc/systemd/system/<unit>.d/lxdctl.conf) for that). C(changed) is true when any of this
    was missing.
  - Waits until the daemon is ready (O(wait_port) / O(wait_unix) accept connections).
  - A daemon that already answers on O(wait_port) or O(wait_unix) without our pidfile (started
    by hand or by an earlier setup) counts as started and is left alone.
  - C(changed) is true only when a daemon was really started, stopped, restarted or signalled.
version_added: 0.1.0
author: lxdctl
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
options:
  name:
    description: Short name of the daemon (log file, unit name C(lxdctl-<name>.service)).
    type: str
    required: true
  state:
    description: What to do. V(reloaded) sends O(signal) without systemd, or C(systemctl reload-or-restart) with it.
    type: str
    choices: [started, stopped, restarted, reloaded]
    default: started
  argv:
    description: The command that runs the daemon in the foreground (or forks, with O(forking)), as a list.
    type: list
    elements: str
    default: []
  pidfile:
    description: The pidfile; written by this module unless O(forking), then by the daemon itself.
    type: path
  env:
    description: Extra environment variables for the daemon.
    type: dict
    default: {}
  user:
    description: Account to run the daemon as; default the current one.
    type: str
  wait_port:
    description: A port, or C(host:port), that must accept TCP connections before the start counts as done.
    type: str
  wait_unix:
    description: A unix socket path that must accept connections before the start counts as done.
    type: path
  timeout:
    description: Seconds to wait for readiness (start) or exit (stop).
    type: int
    default: 30
  unit:
    description: A distribution systemd unit to use instead of writing C(lxdctl-<name>.service) (systemd hosts only).
    type: str
  forking:
    description: O(argv) forks the daemon and returns; the daemon writes O(pidfile) itself.
    type: bool
    default: false
  signal:
    description: Signal for O(state=reloaded) without systemd.
    type: str
    default: HUP
  stop_signal:
    description: Signal that asks the daemon to stop without systemd (V(INT) for PostgreSQL's fast shutdown).
    type: str
    default: TERM
  init_system:
    description: Override the detection (V(auto)).
    type: str
    choices: [auto, systemd, none]
    default: auto
"""

EXAMPLES = r"""
- name: Run PowerDNS
  lxdctl.platform.daemon:
    name: pdns
    unit: pdns
    argv: [/usr/sbin/pdns_server, --daemon=no, --guardian=no, --config-dir=/etc/powerdns]
    pidfile: /run/lxdctl/pdns.pid
    wait_port: "127.0.0.1:8081"

- name: Reload nginx after its configuration changed
  lxdctl.platform.daemon:
    name: nginx
    unit: nginx
    pidfile: /run/lxdctl/nginx.pid
    state: reloaded
    signal: HUP
"""

RETURN = r"""
init_system:
  description: V(systemd) or V(none).
  returned: always
  type: str
status:
  description: V(running), V(external) (answers without our pidfile) or V(stopped), after the task.
  returned: always
  type: str
pid:
  description: The daemon's pid from O(pidfile), when known.
  returned: always
  type: int
log:
  description: Where the daemon's output goes without systemd.
  returned: always
  type: str
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _daemon
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError


def argument_spec():
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", default="started", choices=["started", "stopped", "restarted", "reloaded"]),
        argv=dict(type="list", elements="str", default=[]),
        pidfile=dict(type="path"),
        env=dict(type="dict", default={}),
        user=dict(type="str"),
        wait_port=dict(type="str"),
        wait_unix=dict(type="path"),
        timeout=dict(type="int", default=30),
        unit=dict(type="str"),
        forking=dict(type="bool", default=False),
        signal=dict(type="str", default="HUP"),
        stop_signal=dict(type="str", default="TERM"),
        init_system=dict(type="str", default="auto", choices=["auto", "systemd", "none"]),
    )


class Daemon:
    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.system = _daemon.init_system() if self.p["init_system"] == "auto" else self.p["init_system"]

    def _status(self):
        return _daemon.status(self.p["name"], self.p["pidfile"], unit=self.p["unit"],
                              wait_port=self.p["wait_port"], wait_unix=self.p["wait_unix"], system=self.system)

    def _start(self):
        p = self.p
        if self.system == "none" and not p["argv"]:
            raise LxdctlError("Failed to start %s: argv is required on a host without systemd" % p["name"])
        if self.system == "none" and not p["pidfile"]:
            raise LxdctlError("Failed to start %s: pidfile is required on a host without systemd" % p["name"])
        if self.system == "systemd" and not p["unit"] and not p["argv"]:
            raise LxdctlError("Failed to start %s: give argv or unit" % p["name"])
        return _daemon.start(p["name"], p["argv"], p["pidfile"], env=p["env"], user=p["user"],
                             wait_port=p["wait_port"], wait_unix=p["wait_unix"], timeout=p["timeout"],
                             unit=p["unit"], forking=p["forking"], system=self.system)

    def _stop(self):
        p = self.p
        return _daemon.stop(p["name"], p["pidfile"], timeout=p["timeout"], unit=p["unit"], system=self.system,
                            stop_signal=p["stop_signal"])

    def run(self):
        p = self.p
        state = p["state"]
        _daemon.signal_number(p["signal"])  # refuse an unknown signal even in check mode
        _daemon.signal_number(p["stop_signal"])
        before = self._status()
        check = self.module.check_mode
        if state == "started":
            if self.system == "systemd":
                changed = bool(_daemon.systemd_pending(p["name"], p["argv"], env=p["env"], user=p["user"],
                                                       forking=p["forking"], pidfile=p["pidfile"], unit=p["unit"]))
            else:
                changed = before == "stopped"
            if not check:
                changed = self._start()
        elif state == "stopped":
            changed = before == "running"
            if before == "external":
                self.module.warn("%s answers but was not started through %s; left running" % (p["name"], p["pidfile"]))
            if changed and not check:
                changed = self._stop()
        elif state == "restarted":
            changed = True
            if not check:
                if before == "external":
                    raise LxdctlError("Failed to restart %s: it runs but not under %s; stop it by hand first"
                                      % (p["name"], p["pidfile"]))
                self._stop()
                self._start()
        else:  # reloaded
            if before == "stopped":
                raise LxdctlError("Failed to reload %s: it is not running" % p["name"])
            if before == "external":
                raise LxdctlError("Failed to reload %s: it runs but not under %s" % (p["name"], p["pidfile"]))
            changed = True
            if not check:
                _daemon.reload(p["name"], p["pidfile"], p["signal"], unit=p["unit"], system=self.system)
        after = before if check else self._status()
        return dict(
            changed=bool(changed),
            init_system=self.system,
            status=after,
            pid=_daemon.read_pid(p["pidfile"]),
            log=_daemon.log_path(p["name"]),
            diff=dict(before={"status": before}, after={"status": after if not check else _predict(state, before)}),
        )


def _predict(state, before):
    if state == "stopped":
        return "stopped" if before == "running" else before
    if state == "started" and before == "stopped":
        return "running"
    return before if state == "reloaded" else "running"


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = Daemon(module).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

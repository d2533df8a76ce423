#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: db_backup_schedule
short_description: Schedule regular backups of a project's database (systemd timer or cron)
description:
  - Installs a schedule that runs C(lxdctl db backup <project> --db <db>) - a systemd service and
    timer (C(lxdctl-backup-<project>.timer)) where systemd runs, a file
    C(/etc/cron.d/lxdctl-backup-<project>) otherwise.
  - O(schedule) is V(daily), V(hourly) or a five-field cron expression, validated (numbers, names,
    C(*), ranges, lists and steps); for systemd it is translated to C(OnCalendar=).
version_added: "0.1.0"
author: lxdctl maintainers (@lxdctl)
options:
  project:
    description: The project.
    type: str
    required: true
  db:
    description: The database type to back up.
    type: str
    choices: [postgres, mysql]
    default: postgres
  schedule:
    description: V(daily), V(hourly) or a cron expression. Required with O(state=present).
    type: str
  scheduler:
    description:
      - V(auto) uses systemd when PID 1 is systemd (C(/run/systemd/system) exists), cron otherwise.
    type: str
    choices: [auto, systemd, cron]
    default: auto
  keep:
    description: How many backups each scheduled run keeps.
    type: int
    default: 7
  lxdctl_bin:
    description: The absolute path of the lxdctl command the schedule runs.
    type: path
    default: /usr/local/bin/lxdctl
  cron_dir:
    description: Where the cron file goes.
    type: path
    default: /etc/cron.d
  systemd_dir:
    description: Where the unit files go.
    type: path
    default: /etc/systemd/system
  state:
    description: Whether the schedule exists.
    type: str
    choices: [present, absent]
    default: present
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
"""

EXAMPLES = r"""
- name: Back up myapp every night
  lxdctl.platform.db_backup_schedule:
    project: myapp
    db: postgres
    schedule: daily

- name: Every 15 minutes during working hours
  lxdctl.platform.db_backup_schedule:
    project: myapp
    schedule: "*/15 8-18 * * mon-fri"
"""

RETURN = r"""
scheduler:
  description: C(systemd) or C(cron).
  returned: always
  type: str
files:
  description: The files written or removed.
  returned: always
  type: list
  elements: str
on_calendar:
  description: The systemd calendar expression of the schedule.
  returned: when O(state=present)
  type: str
"""

import os
import re
import subprocess

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._names import argspec_project_name
from ansible_collections.lxdctl.platform.plugins.module_utils import _backup

_BIN_RE = re.compile(r"^/[A-Za-z0-9._/+-]+$")


def argument_spec():
    return dict(
        project=dict(type=argspec_project_name, required=True),
        db=dict(type="str", choices=list(_backup.DB_TYPES), default="postgres"),
        schedule=dict(type="str"),
        scheduler=dict(type="str", choices=["auto", "systemd", "cron"], default="auto"),
        keep=dict(type="int", default=_backup.DEFAULT_KEEP),
        lxdctl_bin=dict(type="path", default="/usr/local/bin/lxdctl"),
        cron_dir=dict(type="path", default="/etc/cron.d"),
        systemd_dir=dict(type="path", default="/etc/systemd/system"),
        state=dict(type="str", choices=["present", "absent"], default="present"),
    )


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


class ScheduleService(object):
    def __init__(self, module):
        self.module = module
        self.p = module.params
        scheduler = self.p["scheduler"]
        if scheduler == "auto":
            scheduler = "systemd" if os.path.isdir("/run/systemd/system") else "cron"
        self.scheduler = scheduler
        unit = "lxdctl-backup-%s" % self.p["project"]
        if scheduler == "systemd":
            self.paths = {"service": os.path.join(self.p["systemd_dir"], unit + ".service"),
                          "timer": os.path.join(self.p["systemd_dir"], unit + ".timer")}
        else:
            self.paths = {"cron": os.path.join(self.p["cron_dir"], unit)}
        self.timer = unit + ".timer"

    def run(self):
        before = dict((k, _read(path)) for k, path in self.paths.items())
        on_calendar = None
        if self.p["state"] == "present":
            if not self.p["schedule"]:
                raise LxdctlError("schedule: required with state=present (daily, hourly or a cron expression)")
            if not _BIN_RE.match(self.p["lxdctl_bin"]):
                raise LxdctlError("lxdctl_bin: must be an absolute path of letters, digits and . _ / + -")
            if self.p["keep"] < 1:
                raise LxdctlError("keep: must be at least 1")
            units = _backup.schedule_units(self.p["project"], self.p["db"], self.p["schedule"], self.p["lxdctl_bin"],
                                           self.p["keep"])
            on_calendar = units["parsed"]["systemd"]
            after = dict((k, units[k]) for k in self.paths)
        else:
            after = dict((k, None) for k in self.paths)
        changed = before != after
        if changed and not self.module.check_mode:
            self._apply(after)
        result = dict(changed=changed, scheduler=self.scheduler, files=sorted(self.paths.values()),
                      diff=dict(before=before, after=after))
        if on_calendar:
            result["on_calendar"] = on_calendar
        return result

    def _systemctl(self, *args):
        proc = subprocess.run(["systemctl"] + list(args), capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise LxdctlError("systemctl %s failed: %s" % (" ".join(args), proc.stderr.strip()))

    def _apply(self, after):
        if self.scheduler == "systemd" and all(v is None for v in after.values()):
            if os.path.exists(self.paths["timer"]):
                self._systemctl("disable", "--now", self.timer)
        for key, content in after.items():
            path = self.paths[key]
            if content is None:
                if os.path.exists(path):
                    os.unlink(path)
                continue
            if not os.path.isdir(os.path.dirname(path)):
                raise LxdctlError("%s does not exist: is %s installed?" % (os.path.dirname(path), self.scheduler))
            _backup.write_atomic(path, content.encode())
            os.chmod(path, 0o644)
        if self.scheduler == "systemd":
            self._systemctl("daemon-reload")
            if any(v is not None for v in after.values()):
                self._systemctl("enable", "--now", self.timer)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        result = ScheduleService(module).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

"""Run one collection module through real Ansible (ad-hoc, json callback) and return its result.

Integration tests use this to drive modules the way a playbook does: argument_spec,
check mode and diff included.  The result is the module's return dict.
"""
import json
import os
import subprocess
import sys

from lxdctl.collection import collections_path

CALLBACK_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "callback_plugins")


class ModuleRun(dict):
    @property
    def failed(self):
        return bool(self.get("failed"))

    @property
    def changed(self):
        return bool(self.get("changed"))


def ansible_env(extra=None):
    env = dict(os.environ)
    env.update(
        {
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_CALLBACK_PLUGINS": CALLBACK_DIR,
            "ANSIBLE_STDOUT_CALLBACK": "lxdctl_test_json",
            "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
            # As the CLI's runner does: module payloads built once, not once per test.
            "ANSIBLE_CALLBACKS_ENABLED": "lxdctl.platform.ansiballz_cache",
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_SYSTEM_WARNINGS": "0",
            "ANSIBLE_LOCALHOST_WARNING": "0",
            "ANSIBLE_INVENTORY_UNPARSED_WARNING": "0",
            "PATH": os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        }
    )
    env.update(extra or {})
    return env


def run_module(name, args, check=False, diff=False, host="localhost", env=None, timeout=600):
    """Run ``lxdctl.platform.<name>`` (or a full FQCN) with ``args`` and return its result."""
    fqcn = name if "." in name else "lxdctl.platform." + name
    cmd = [
        os.path.join(os.path.dirname(sys.executable), "ansible"),
        host,
        "-i", "localhost,",
        "-c", "local",
        "-e", "ansible_python_interpreter=%s" % sys.executable,
        "-m", fqcn,
        "-a", json.dumps(args),
    ]
    if check:
        cmd.append("--check")
    if diff:
        cmd.append("--diff")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=ansible_env(env), timeout=timeout)
    try:
        report = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError("ansible printed no JSON (rc=%s)\nstdout:%s\nstderr:%s" % (proc.returncode, proc.stdout, proc.stderr))
    hosts = report["plays"][0]["tasks"][0]["hosts"]
    return ModuleRun(hosts[host])

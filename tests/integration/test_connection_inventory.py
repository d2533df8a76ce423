"""The connection plugin lxdctl.platform.lxd and the inventory plugin lxdctl.platform.projects.

One real container, lxdctl-it-conn (project label it-conn); ordinary Ansible tasks run in it
through pylxd, and the inventory built from its labels reaches it.
"""
import hashlib
import json
import os
import subprocess

import pytest

from tests.integration.lxd_support import ANSIBLE, _env, https_endpoint, run_adhoc

pytestmark = pytest.mark.integration

NAME = "lxdctl-it-conn"
PROJECT = "it-conn"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INVENTORY = os.path.join(ROOT, "inventories", "local", "projects.lxdctl.yml")
CONN = ["-c", "lxdctl.platform.lxd", "-e", "ansible_python_interpreter=/usr/bin/python3"]
TEMPLATE_PAYLOAD = "{{ lookup('pipe', 'touch /tmp/lxdctl-it-conn-pwned') }}"


def lxc(*args, check=True, **kwargs):
    proc = subprocess.run(["lxc"] + list(args), capture_output=True, timeout=120, **kwargs)
    if check and proc.returncode != 0:
        raise AssertionError("lxc %s failed: %s" % (" ".join(args), proc.stderr))
    return proc


@pytest.fixture(scope="module")
def container():
    lxc("delete", "--force", NAME, check=False)
    lxc("launch", "lxdctl-base", NAME, "-p", "lxdctl",
        "-c", "user.lxdctl.project=%s" % PROJECT, "-c", "user.lxdctl.runtime=python",
        "-c", "user.lxdctl.note=%s" % TEMPLATE_PAYLOAD)
    yield NAME
    lxc("delete", "--force", NAME, check=False)


def direct(module, args, *extra):
    return run_adhoc(NAME, module, args, NAME + ",", extra_args=CONN + list(extra))[NAME]


def test_command_through_the_connection(container):
    res = direct("ansible.builtin.command", "cat /etc/os-release")
    assert not res.failed, res
    assert 'ID=debian' in res["stdout"]
    res = direct("ansible.builtin.shell", "echo out; echo err >&2; exit 3")
    assert res.failed and res["rc"] == 3
    assert res["stdout"] == "out" and res["stderr"] == "err"
    # pipelining sends the module on stdin
    res = direct("ansible.builtin.command", "id -u", "-e", "ansible_pipelining=true")
    assert not res.failed and res["stdout"] == "0"


def test_copy_then_fetch(container, tmp_path):
    src = tmp_path / "payload.bin"
    data = os.urandom(4096) + b"\nline two\n"
    src.write_bytes(data)
    res = direct("ansible.builtin.copy", "src=%s dest=/root/payload.bin mode=0640" % src)
    assert not res.failed, res
    assert res.changed
    stat = lxc("exec", NAME, "--", "stat", "-c", "%a %U", "/root/payload.bin", text=True).stdout.split()
    assert stat == ["640", "root"]
    inside = lxc("exec", NAME, "--", "sha256sum", "/root/payload.bin", text=True).stdout.split()[0]
    assert inside == hashlib.sha256(data).hexdigest()
    assert not direct("ansible.builtin.copy", "src=%s dest=/root/payload.bin mode=0640" % src).changed

    lxc("exec", NAME, "--", "sh", "-c", "printf 'from the container\\n' > /root/out.txt")
    res = direct("ansible.builtin.fetch", "src=/root/out.txt dest=%s/ flat=yes" % tmp_path)
    assert not res.failed, res
    assert (tmp_path / "out.txt").read_bytes() == b"from the container\n"

    res = direct("ansible.builtin.fetch", "src=/root/payload.bin dest=%s/back.bin flat=yes" % tmp_path)
    assert not res.failed, res
    assert (tmp_path / "back.bin").read_bytes() == data


def test_connection_over_https_with_client_certificate(container, tmp_path):
    with https_endpoint(str(tmp_path)) as remote:
        res = direct("ansible.builtin.command", "cat /etc/hostname",
                     "-e", "lxdctl_lxd_url=%s" % remote["url"], "-e", "lxdctl_lxd_client_cert=%s" % remote["cert"],
                     "-e", "lxdctl_lxd_client_key=%s" % remote["key"], "-e", "lxdctl_lxd_verify=false")
        assert not res.failed, res
        expected = lxc("exec", NAME, "--", "cat", "/etc/hostname", text=True).stdout.strip()
        assert res["stdout"] == expected
        # an untrusted client is refused
        res = direct("ansible.builtin.command", "true", "-e", "lxdctl_lxd_url=%s" % remote["url"],
                     "-e", "lxdctl_lxd_verify=false")
        assert res.failed and "lxd_client_cert" in res["msg"]


def test_missing_instance_is_unreachable():
    res = run_adhoc("lxdctl-it-conn-missing", "ansible.builtin.command", "true", "lxdctl-it-conn-missing,",
                    extra_args=CONN)["lxdctl-it-conn-missing"]
    assert res.failed and res.get("unreachable")
    assert "does not exist" in res["msg"]


def test_inventory_lists_project_with_labels(container):
    proc = subprocess.run([os.path.join(os.path.dirname(ANSIBLE), "ansible-inventory"), "-i", INVENTORY, "--list"],
                          capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    listing = json.loads(proc.stdout)
    hostvars = listing["_meta"]["hostvars"][PROJECT]

    def plain(value):
        return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value

    assert plain(hostvars["ansible_connection"]) == "lxdctl.platform.lxd"
    assert plain(hostvars["ansible_host"]) == NAME
    assert plain(hostvars["ansible_python_interpreter"]) == "/usr/bin/python3"
    assert plain(hostvars["lxdctl_project"]) == PROJECT
    assert plain(hostvars["lxdctl_runtime"]) == "python"
    assert PROJECT in listing["lxdctl_projects"]["hosts"]
    assert PROJECT in listing["runtime_python"]["hosts"]
    assert PROJECT in listing["status_running"]["hosts"]


def test_inventory_host_runs_tasks_and_labels_are_not_templated(container):
    res = run_adhoc(PROJECT, "ansible.builtin.command", "cat /proc/uptime", INVENTORY)[PROJECT]
    assert not res.failed, res
    assert float(res["stdout"].split()[0]) > 0
    res = run_adhoc(PROJECT, "ansible.builtin.debug", "var=lxdctl_note", INVENTORY)[PROJECT]
    assert not res.failed, res
    assert res["lxdctl_note"] == TEMPLATE_PAYLOAD
    assert not os.path.exists("/tmp/lxdctl-it-conn-pwned")


def test_inventory_for_a_remote_lxd_over_https(container, tmp_path):
    """The inventory decides the endpoint: the hosts it builds carry the LXD URL and client cert."""
    with https_endpoint(str(tmp_path)) as remote:
        inventory = tmp_path / "remote.lxdctl.yml"
        inventory.write_text(
            "plugin: lxdctl.platform.projects\n"
            "lxd_url: %s\nlxd_client_cert: %s\nlxd_client_key: %s\nlxd_verify: 'false'\n"
            % (remote["url"], remote["cert"], remote["key"]))
        res = run_adhoc(PROJECT, "ansible.builtin.command", "cat /etc/hostname", str(inventory))[PROJECT]
        assert not res.failed, res
        res = run_adhoc(PROJECT, "ansible.builtin.debug", "var=lxdctl_lxd_url", str(inventory))[PROJECT]
        assert res["lxdctl_lxd_url"] == remote["url"]

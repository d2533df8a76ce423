"""lxdctl-ansible-playbook: ansible-playbook's own run and exit code, without the heap teardown."""
import os
import subprocess
import sys

from lxdctl import playbook_process

LAUNCHER = os.path.join(os.path.dirname(sys.executable), playbook_process.NAME)

PASSING = """
- name: Pass
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Say so
      ansible.builtin.debug:
        msg: passed-{{ 6 * 7 }}
"""

FAILING = """
- name: Fail
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Fail on purpose
      ansible.builtin.fail:
        msg: failed on purpose
"""


def launch(tmp_path, playbook_text, *args):
    playbook = tmp_path / "play.yml"
    playbook.write_text(playbook_text)
    env = dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), ANSIBLE_NOCOLOR="1")
    return subprocess.run([LAUNCHER, "-i", "localhost,", "-c", "local", *args, str(playbook)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_launcher_is_installed_beside_lxdctl():
    assert playbook_process.executable() == LAUNCHER


def test_a_passing_play_exits_0_with_its_output(tmp_path):
    proc = launch(tmp_path, PASSING)
    assert proc.returncode == 0, proc.stderr
    assert "passed-42" in proc.stdout and "ok=1" in proc.stdout  # the recap, flushed before os._exit
    # the exit handlers ran: Ansible removed its local temp dir of this run
    assert [p.name for p in (tmp_path / "tmp").iterdir() if p.name.startswith("ansible-local-")] == []


def test_a_failing_play_keeps_ansible_playbooks_exit_code(tmp_path):
    proc = launch(tmp_path, FAILING)
    plain = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,",
                            "-c", "local", str(tmp_path / "play.yml")], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp")))
    assert proc.returncode == plain.returncode == 2, (proc.stdout, plain.stdout)
    assert "failed on purpose" in proc.stdout


def test_a_usage_error_keeps_its_exit_code_and_message(tmp_path):
    proc = launch(tmp_path, PASSING, "--no-such-option")
    assert proc.returncode == 2 and "--no-such-option" in proc.stderr


def test_exit_status_follows_sys_exit(capsys):
    assert playbook_process.exit_status(None) == 0
    assert playbook_process.exit_status(4) == 4
    assert playbook_process.exit_status("bad things") == 1
    assert "bad things" in capsys.readouterr().err

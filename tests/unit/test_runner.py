"""The runner layer: unsafe extravars, the private data dir, event mapping."""
import json
import os
import stat
import subprocess
import sys
import time

import click
import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.yaml.loader import AnsibleLoader
from ansible.template import Templar

try:  # ansible-core >= 2.19 trusts only marked templates
    from ansible.template import trust_as_template
except ImportError:  # older ansible-core trusts every plain string
    def trust_as_template(text):
        return text

from lxdctl import runner
from lxdctl.progress import Progress
from tests.support.faults import kill_group


def test_every_string_extravar_is_tagged_unsafe():
    text = runner.dump_unsafe_extravars({"name": "app", "env": {"K": "{{ lookup('pipe','id') }}"}, "n": 3})
    assert "!unsafe '{{ lookup(''pipe'',''id'') }}'" in text
    loaded = AnsibleLoader(text).get_single_data()
    value = loaded["env"]["K"]
    # Ansible's own templar must hand the value back untouched instead of running the lookup.
    assert Templar(loader=DataLoader(), variables={"v": value}).template(trust_as_template("{{ v }}")) == "{{ lookup('pipe','id') }}"
    assert loaded["n"] == 3


def test_multiline_values_survive_literally():
    text = runner.dump_unsafe_extravars({"v": "line1\nline2 {{ x }}\n"})
    assert AnsibleLoader(text).get_single_data()["v"] == "line1\nline2 {{ x }}\n"


def test_empty_strings_stay_empty_strings():
    loaded = AnsibleLoader(runner.dump_unsafe_extravars({"mirror": "", "names": ["", "x"]})).get_single_data()
    assert loaded == {"mirror": "", "names": ["", "x"]}


def test_build_lays_out_private_dir(tmp_path):
    private = tmp_path / "run"
    private.mkdir(mode=0o700)
    run = runner.PlaybookRun("bootstrap", {"platform_pebble_enabled": True}, check=True)
    kwargs = run.build(str(private))
    # the installed launcher runs ansible-playbook; the playbook then comes last on its command line
    assert os.path.basename(kwargs["binary"]) == "lxdctl-ansible-playbook" and "playbook" not in kwargs
    flags = kwargs["cmdline"].split()
    assert flags[:2] == ["--check", "--diff"] and flags[2].endswith(os.path.join("playbooks", "bootstrap.yml"))
    assert stat.S_IMODE(os.stat(private / "env").st_mode) == 0o700
    inventory = yaml.safe_load((private / "inventory" / "hosts.yml").read_text())
    host = inventory["all"]["hosts"]["localhost"]
    assert host["ansible_connection"] == "local"
    assert os.path.isabs(host["ansible_python_interpreter"])
    assert kwargs["envvars"]["ANSIBLE_COLLECTIONS_PATH"]


def test_plain_ansible_playbook_where_the_launcher_is_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(runner.playbook_process, "executable", lambda: None)
    kwargs = runner.PlaybookRun("bootstrap", {}).build(str(tmp_path))
    assert "binary" not in kwargs and kwargs["cmdline"] is None
    assert kwargs["playbook"].endswith(os.path.join("playbooks", "bootstrap.yml"))


def _event(kind, **data):
    return {"event": kind, "event_data": data}


def test_progress_keeps_first_failure_and_outputs():
    progress = Progress(enabled=False)
    progress.handle(_event("playbook_on_task_start", task="Create database"))
    progress.handle(_event("runner_on_ok", task="Create database", res={"changed": True}))
    progress.handle(_event("playbook_on_task_start", task="Create record"))
    progress.handle(_event("runner_on_failed", task="Create record", res={"msg": "zone x. not managed"}))
    progress.handle(_event("playbook_on_task_start", task="Other"))
    progress.handle(_event("runner_on_failed", task="Other", res={"msg": "second"}))
    progress.handle(_event("playbook_on_stats", changed={"localhost": 1}, artifact_data={"url": "http://x"}))
    progress.close()
    assert progress.failed_task == "Create record"
    assert progress.failed_msg == "zone x. not managed"
    assert progress.outputs == {"url": "http://x"}
    assert progress.stats["changed"] == {"localhost": 1}


def test_progress_never_reveals_no_log_results():
    progress = Progress(enabled=False)
    progress.handle(_event("playbook_on_task_start", task="Set password"))
    progress.handle(_event("runner_on_failed", task="Set password", res={"censored": "hidden", "msg": "pw=s3cret"}))
    assert "s3cret" not in progress.failed_msg
    assert "no_log" in progress.failed_msg


def test_ignored_failures_are_not_reported():
    progress = Progress(enabled=False)
    progress.handle(_event("playbook_on_task_start", task="Probe"))
    progress.handle(_event("runner_on_failed", task="Probe", ignore_errors=True, res={"msg": "nope"}))
    assert progress.failed_task == ""


MODULE_PROCESS_PLAYBOOK = """
- name: Show what runs a module
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Read the command line of the process that runs this module
      ansible.builtin.command:
        argv: ["sh", "-c", "tr '\\\\0' ' ' < /proc/$PPID/cmdline"]
      register: module_process
      changed_when: false
    - name: Report it
      ansible.builtin.set_stats:
        data:
          module_process: "{{ module_process.stdout }}"
"""


def _reported(tmp_path, playbook_text, key):
    """Run ``playbook_text`` as the CLI runs its plays; the value its set_stats reports as ``key``."""
    playbook = tmp_path / (key + ".yml")
    playbook.write_text(playbook_text)
    result = runner.run_playbook(str(playbook), {})
    assert result.ok, result.failed_msg
    return result.outputs[key]


def _module_process(tmp_path):
    return _reported(tmp_path, MODULE_PROCESS_PLAYBOOK, "module_process")


CONTROLLER_PLAYBOOK = """
- name: Show what runs the play
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Report the controller's command line (a lookup's shell is a child of it or of its fork)
      ansible.builtin.set_stats:
        data:
          controller: "{{ lookup('ansible.builtin.pipe', 'xargs -0 echo < /proc/$PPID/cmdline') }}"
"""


def test_the_cli_runs_its_plays_through_lxdctl_ansible_playbook(tmp_path):
    launcher = os.path.join(os.path.dirname(sys.executable), "lxdctl-ansible-playbook")
    assert _reported(tmp_path, CONTROLLER_PLAYBOOK, "controller").split()[1] == launcher


def test_modules_run_under_mitogen_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("LXDCTL_ANSIBLE_STRATEGY", raising=False)
    settings = runner.execution_settings()
    assert settings["ANSIBLE_STRATEGY"] == "mitogen_linear"
    assert os.path.isfile(os.path.join(settings["ANSIBLE_STRATEGY_PLUGINS"], "mitogen_linear.py"))
    monkeypatch.delenv("LXDCTL_MITOGEN_TARGET", raising=False)
    # a module forked from Mitogen's interpreter (its bootstrap names it), not a python running an AnsiballZ zip
    shown = _module_process(tmp_path)
    assert "(mitogen:" in shown and "AnsiballZ" not in shown


def test_modules_run_in_a_fork_of_the_controller_when_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("LXDCTL_ANSIBLE_STRATEGY", raising=False)
    monkeypatch.setenv("LXDCTL_MITOGEN_TARGET", "fork")
    shown = _module_process(tmp_path).split()
    assert os.path.basename(shown[1]) == "lxdctl-ansible-playbook" and "AnsiballZ" not in " ".join(shown)


WHERE_ANSIBLE_MODULE = """
import ansible.module_utils.basic
import ansible_mitogen
from ansible.module_utils.basic import AnsibleModule

AnsibleModule(argument_spec={}).exit_json(changed=False, basic=ansible.module_utils.basic.__file__,
                                          ansible_mitogen=ansible_mitogen.__file__)
"""

WHERE_ANSIBLE_PLAYBOOK = """
- name: Show where the target's Ansible comes from
  hosts: localhost
  gather_facts: true
  tasks:
    - name: Ask a module
      where_ansible:
      register: where
    - name: Report it
      ansible.builtin.set_stats:
        data:
          basic: "{{ where.basic }}"
          ansible_mitogen: "{{ where.ansible_mitogen }}"
          python: "{{ ansible_facts.python.executable }}"
"""


def test_the_target_imports_ansible_from_disk_not_from_the_controller(tmp_path, monkeypatch):
    # Mitogen would send it (as "master:<path>"), compiled afresh every run (lxdctl.mitogen_local)
    monkeypatch.delenv("LXDCTL_ANSIBLE_STRATEGY", raising=False)
    (tmp_path / "library").mkdir()
    (tmp_path / "library" / "where_ansible.py").write_text(WHERE_ANSIBLE_MODULE)
    playbook = tmp_path / "where.yml"
    playbook.write_text(WHERE_ANSIBLE_PLAYBOOK)
    result = runner.run_playbook(str(playbook), {}, envvars={"ANSIBLE_LIBRARY": str(tmp_path / "library")})
    assert result.ok, result.failed_msg
    import ansible.module_utils.basic
    import ansible_mitogen

    assert result.outputs["basic"] == ansible.module_utils.basic.__file__
    assert result.outputs["ansible_mitogen"] == ansible_mitogen.__file__
    # facts (the setup module) still gathered; the target runs this interpreter (bin/python or bin/python3)
    assert os.path.realpath(result.outputs["python"]) == os.path.realpath(sys.executable)


def test_plain_ansible_when_the_strategy_is_linear(tmp_path, monkeypatch):
    monkeypatch.setenv("LXDCTL_ANSIBLE_STRATEGY", "linear")
    settings = runner.execution_settings()
    assert settings["ANSIBLE_STRATEGY"] == "linear" and "ANSIBLE_STRATEGY_PLUGINS" not in settings
    assert "lxdctl.platform.ansiballz_cache" in settings["ANSIBLE_CALLBACKS_ENABLED"]
    assert "AnsiballZ_command.py" in _module_process(tmp_path)


def test_playbooks_that_install_packages_run_on_plain_ansible(monkeypatch):
    # apt re-runs itself under the system Python, which Mitogen cannot do
    monkeypatch.delenv("LXDCTL_ANSIBLE_STRATEGY", raising=False)
    for playbook in ("bootstrap", "image_build"):
        assert runner.execution_settings(playbook)["ANSIBLE_STRATEGY"] == "linear"
    assert runner.execution_settings("project_create")["ANSIBLE_STRATEGY"] == "mitogen_linear"


def test_an_unknown_strategy_is_refused_before_ansible_starts(tmp_path, monkeypatch):
    monkeypatch.setenv("LXDCTL_ANSIBLE_STRATEGY", "bogus")
    monkeypatch.setenv("LXDCTL_KEEP_ARTIFACTS", "")  # the private dir is made in the system temp dir
    monkeypatch.setattr(runner.tempfile, "tempdir", str(tmp_path))
    with pytest.raises(click.UsageError) as err:
        runner.run_playbook("noop_wait", {"noop_wait_seconds": "0"})
    assert "LXDCTL_ANSIBLE_STRATEGY" in err.value.message and "mitogen_linear" in err.value.message
    assert list(tmp_path.iterdir()) == []  # its private dir is gone again


def test_a_child_that_ended_is_closed_without_the_pause():
    import ptyprocess

    runner.close_ended_children_at_once()
    runner.close_ended_children_at_once()  # installed once, not wrapped twice
    assert ptyprocess.PtyProcess.close.lxdctl_at_once
    ended = ptyprocess.PtyProcess.spawn(["true"])
    ended.wait()
    ended.close()
    assert ended.delayafterclose == 0 and ended.exitstatus == 0
    running = ptyprocess.PtyProcess.spawn(["sleep", "30"])
    running.close(force=True)  # the pause, then the kill, as before
    assert running.delayafterclose == 0.1 and not running.isalive() and running.signalstatus is not None


def _private_dir(parent, name, owner_pid=None):
    path = parent / name
    (path / "env").mkdir(parents=True)
    if owner_pid is not None:
        (path / "env" / "envvars").write_text(json.dumps({"LXDCTL_CLI_PID": str(owner_pid)}))
    return path


def test_sweep_removes_only_private_dirs_of_ended_clis(tmp_path):
    ended = subprocess.Popen(["true"])
    ended.wait()
    gone = _private_dir(tmp_path, "lxdctl-run-gone", ended.pid)
    mine = _private_dir(tmp_path, "lxdctl-run-mine", os.getpid())
    new = _private_dir(tmp_path, "lxdctl-run-new")  # being laid out: no envvars yet
    other = _private_dir(tmp_path, "other-dir", ended.pid)
    assert runner.sweep_private_dirs_of_killed_runs(str(tmp_path)) == [str(gone)]
    assert not gone.exists() and mine.exists() and new.exists() and other.exists()


def test_a_killed_clis_private_dir_is_swept_by_the_next_run(tmp_path):
    env = dict(os.environ, TMPDIR=str(tmp_path))
    env.pop("LXDCTL_KEEP_ARTIFACTS", None)
    cli = subprocess.Popen([sys.executable, "-c", "from lxdctl import runner; "
                            "runner.run_playbook('noop_wait', {'noop_wait_seconds': '60'})"],
                           env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(tmp_path.glob("lxdctl-run-*/env/envvars")):
        time.sleep(0.1)
    left = [p.parent.parent for p in tmp_path.glob("lxdctl-run-*/env/envvars")]
    kill_group(cli)  # as kill -9 of the CLI and its play would
    cli.wait(timeout=30)
    assert len(left) == 1 and left[0].exists()  # the kill skipped run_playbook's cleanup
    assert runner.sweep_private_dirs_of_killed_runs(str(tmp_path)) == [str(left[0])]
    assert not left[0].exists()

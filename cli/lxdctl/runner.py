"""The runner layer: build ansible-runner arguments, run one playbook, map the result.

Every command that changes the world comes through ``run_playbook``.  User input reaches
Ansible only as extra vars tagged ``!unsafe``, so Jinja never evaluates it, and the private
data dir (mode 0700) is removed afterwards so no artifact outlives the run.  To debug a run,
``LXDCTL_KEEP_ARTIFACTS=DIR`` keeps the private dir under DIR; secret-handling tasks are
``no_log``, so even kept artifacts hold no secret.
"""
import importlib.util
import json
import os
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field

import click
import yaml

from lxdctl import playbook_process
from lxdctl.collection import collections_path, module_utils, playbook_path
from lxdctl.progress import Progress


class _UnsafeDumper(yaml.SafeDumper):
    """Dumps every string as ``!unsafe`` so Ansible never templates user input."""


def _unsafe_str(dumper, value):
    if value == "":
        # ansible-core 2.19 loads ``!unsafe ''`` as None; an empty string holds no template anyway.
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="'")
    return dumper.represent_scalar("!unsafe", value, style="'" if "\n" not in value else "|")


_UnsafeDumper.add_representer(str, _unsafe_str)


def dump_unsafe_extravars(extravars):
    return yaml.dump(extravars, Dumper=_UnsafeDumper, default_flow_style=False, allow_unicode=True)


@dataclass
class RunResult:
    rc: int
    status: str
    stats: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)
    failed_task: str = ""
    failed_msg: str = ""

    @property
    def ok(self):
        return self.rc == 0 and self.status == "successful"

    @property
    def changed(self):
        return sum((self.stats.get("changed") or {}).values())


@dataclass
class PlaybookRun:
    """Everything one playbook run needs; ``build`` lays out the private data dir."""

    playbook: str
    extravars: dict
    check: bool = False
    verbosity: int = 0
    envvars: dict = field(default_factory=dict)

    def build(self, private_dir):
        os.makedirs(os.path.join(private_dir, "env"), mode=0o700)
        os.makedirs(os.path.join(private_dir, "inventory"), mode=0o700)
        with open(os.path.join(private_dir, "env", "extravars"), "w") as handle:
            handle.write(dump_unsafe_extravars(self.extravars))
        with open(os.path.join(private_dir, "inventory", "hosts.yml"), "w") as handle:
            yaml.safe_dump(localhost_inventory(), handle)
        bin_dir = os.path.dirname(sys.executable)
        env = {
            "ANSIBLE_COLLECTIONS_PATH": collections_path(),
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "ANSIBLE_LOCAL_TEMP": os.path.join(private_dir, "tmp"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "0",
            "ANSIBLE_SYSTEM_WARNINGS": "0",
            "LXDCTL_CLI_PID": str(os.getpid()),
            **execution_settings(self.playbook),
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
        }
        env.update(self.envvars)
        cmdline = ["--check", "--diff"] if self.check else []
        launcher = playbook_process.executable()
        if launcher:  # ansible-runner then takes the playbook from the command line, not from "playbook"
            where = {"binary": launcher}
            cmdline.append(playbook_path(self.playbook))
        else:
            where = {"playbook": playbook_path(self.playbook)}
        return {
            "private_data_dir": private_dir,
            **where,
            "inventory": os.path.join(private_dir, "inventory", "hosts.yml"),
            "envvars": env,
            "cmdline": shlex.join(cmdline) or None,
            "verbosity": self.verbosity or None,
            "quiet": self.verbosity == 0,
            "rotate_artifacts": 1,
        }


# apt re-runs itself under the system Python (respawn_module), which Mitogen cannot do; these
# playbooks install packages and run seldom, so they run on plain Ansible.
PLAIN_ANSIBLE_PLAYBOOKS = frozenset({"bootstrap", "image_build"})
STRATEGIES = ("mitogen_linear", "mitogen_free", "linear", "free")


def execution_settings(playbook=""):
    """How the play runs its tasks: through Mitogen, unless ``LXDCTL_ANSIBLE_STRATEGY`` says otherwise.

    Mitogen keeps one Python interpreter for the whole run and forks each module from it, so a
    task no longer costs a shell, a fresh interpreter and a module zip: a create takes about a
    quarter less time, a deploy a third less.  ``LXDCTL_ANSIBLE_STRATEGY=linear`` runs plain
    Ansible, as ``ansible-playbook`` and AWX run the same playbooks; module payloads are then
    kept from run to run by the ansiballz_cache callback.  cli_watchdog ends the play if this CLI is
    killed, whatever the strategy (both callbacks are in plugins/callback/).
    """
    strategy = os.environ.get("LXDCTL_ANSIBLE_STRATEGY", "mitogen_linear")
    if strategy not in STRATEGIES:
        # before Ansible starts: its own message ("Invalid play strategy") never reaches the user
        raise click.UsageError("LXDCTL_ANSIBLE_STRATEGY: must be one of %s (got %r)" % (", ".join(STRATEGIES), strategy))
    mitogen = None
    if strategy.startswith("mitogen") and playbook not in PLAIN_ANSIBLE_PLAYBOOKS:
        mitogen = importlib.util.find_spec("ansible_mitogen")  # found, not imported: the play imports it
    if mitogen is None:
        return {
            "ANSIBLE_STRATEGY": "linear" if strategy.startswith("mitogen") else strategy,
            "ANSIBLE_CALLBACKS_ENABLED": "lxdctl.platform.cli_watchdog,lxdctl.platform.ansiballz_cache",
        }
    return {
        # Mitogen's strategies, wrapped so the target imports Ansible from disk (lxdctl.mitogen_local)
        "ANSIBLE_STRATEGY_PLUGINS": os.path.join(os.path.dirname(os.path.abspath(__file__)), "strategy_plugins"),
        "ANSIBLE_STRATEGY": strategy,
        "ANSIBLE_CALLBACKS_ENABLED": "lxdctl.platform.cli_watchdog",
    }


def localhost_inventory():
    return {
        "all": {
            "hosts": {
                "localhost": {
                    "ansible_connection": "local",
                    "ansible_python_interpreter": sys.executable,
                }
            }
        }
    }


def close_ended_children_at_once():
    """ptyprocess sleeps 0.1 s in ``close()`` before it checks whether its child still lives.

    ansible-runner closes ansible-playbook's pty only once the play has ended and the process is
    gone, so that sleep is a tenth of a second added to every command for nothing.  A child
    that still runs is closed as before, with the pause and then the kill.
    """
    import ptyprocess

    close = ptyprocess.PtyProcess.close
    if getattr(close, "lxdctl_at_once", False):
        return

    def close_at_once(self, force=True):
        if not self.closed and not self.isalive():
            self.delayafterclose = 0
        return close(self, force=force)

    close_at_once.lxdctl_at_once = True
    ptyprocess.PtyProcess.close = close_at_once


PRIVATE_DIR_PREFIX = "lxdctl-run-"


def _owner_pid(private_dir):
    """The pid of the CLI that made ``private_dir`` (its ``LXDCTL_CLI_PID``), or None if unknown yet."""
    try:
        with open(os.path.join(private_dir, "env", "envvars")) as handle:
            return int(json.load(handle)["LXDCTL_CLI_PID"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def sweep_private_dirs_of_killed_runs(parent=None):
    """Remove the private dirs of runs whose CLI is gone: ``kill -9`` skips the cleanup below.

    A dir whose owner is unknown (being laid out right now) or alive is left alone."""
    parent = parent or tempfile.gettempdir()
    try:
        entries = [e for e in os.listdir(parent) if e.startswith(PRIVATE_DIR_PREFIX)]
    except OSError:
        return []
    removed = []
    if not entries:
        return removed
    pid_alive = module_utils("_procs").pid_alive  # the liveness rule lock owners are judged by
    for entry in entries:
        path = os.path.join(parent, entry)
        owner = _owner_pid(path)
        if owner is not None and not pid_alive(owner):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def run_playbook(playbook, extravars, check=False, verbosity=0, progress=None, envvars=None):
    """Run ``playbooks/<playbook>.yml`` and return a ``RunResult``; never raises for a failed play."""
    import ansible_runner  # imported late: it costs ~0.3 s and --help must stay fast

    close_ended_children_at_once()

    run = PlaybookRun(playbook, extravars, check=check, verbosity=verbosity, envvars=envvars or {})
    progress = progress or Progress(enabled=verbosity == 0)
    keep_under = os.environ.get("LXDCTL_KEEP_ARTIFACTS")
    if keep_under:
        os.makedirs(keep_under, mode=0o700, exist_ok=True)
    else:
        sweep_private_dirs_of_killed_runs()
    private_dir = tempfile.mkdtemp(prefix=PRIVATE_DIR_PREFIX, dir=keep_under or None)
    os.chmod(private_dir, 0o700)
    try:
        kwargs = run.build(private_dir)
        runner = ansible_runner.run(event_handler=progress.handle, **kwargs)
        return RunResult(
            rc=runner.rc,
            status=runner.status,
            stats=progress.stats,
            outputs=progress.outputs,
            failed_task=progress.failed_task,
            failed_msg=progress.failed_msg,
        )
    finally:
        progress.close()
        if keep_under:
            sys.stderr.write("ansible-runner artifacts kept in %s\n" % private_dir)
        else:
            shutil.rmtree(private_dir, ignore_errors=True)

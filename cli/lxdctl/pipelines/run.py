"""Pipeline runs from the CLI's side: queue a run, have the collection run it, follow its log.

The run itself is the playbook ``pipeline_run`` (role ``pipeline``): it takes the queued run,
fetches the branch/commit, reads the pipeline file at it, runs the stages in an ephemeral
limited LXD container and writes the run's status, stages, log and files to the state store
(``pipeline_runs``).  ``ansible-playbook playbooks/pipeline_run.yml -e pipeline_project=P``
makes the same run and the same records.  Here: the queue row (the API and webhooks queue
before a job worker runs it), the live log on the terminal, and the outcome read back.

A run row (``pipeline_runs``) moves queued -> running -> success | failed | cancelled.  Its
``artifacts`` JSON keeps the run's facts: branch, commit, stages and their outcome, the files
copied out (under ``/var/lib/lxdctl/pipelines/<project>/<run>/``) and the environment URL.
"""
import os
import socket
import threading

from lxdctl.collection import module_utils

PIPELINE = "default"  # one pipeline per project; its row's name in the pipelines table
PIPELINE_DIR = os.environ.get("LXDCTL_PIPELINE_DIR", "/var/lib/lxdctl/pipelines")
TERMINAL = ("success", "failed", "cancelled")
PLAYBOOK = "pipeline_run"


class RunError(Exception):
    pass


def _state():
    return module_utils("_state")


def open_store():
    return _state().StateStore.open()


def container_name(project, number):
    return "lxdctl-ci-%s-%d" % (project, number)


def run_dir(project, number):
    return os.path.join(PIPELINE_DIR, project, str(number))


def get_run(store, project, number=None):
    """The run ``number`` (or the newest) of the project's pipeline, or None."""
    rows = store.list_pipeline_runs(project, PIPELINE, limit=1 if number is None else 1000000)
    if number is None:
        return rows[0] if rows else None
    return next((row for row in rows if row["run_number"] == int(number)), None)


def _run_by_id(store, project, run_id):
    return module_utils("_pipeline_run").find_run(store, project, run_id)


# --- the run -----------------------------------------------------------------------------
def queue_run(project, branch=None, commit=None, only=None, trigger="cli", store=None):
    """A new ``queued`` run row of the project's pipeline (numbered by the store)."""
    own = store is None
    store = store or open_store()
    try:
        if store.get_pipeline(project, PIPELINE) is None:
            raise RunError("project %s has no pipeline (lxdctl pipeline create %s)" % (project, project))
        facts = {"branch": branch, "commit": commit, "only": list(only) if only else None, "trigger": trigger,
                 "stages": [], "files": []}
        return store.create_pipeline_run(project, PIPELINE, status="queued", artifacts=facts)
    finally:
        if own:
            store.close()


def runner_active(store, run_id):
    """Whether a runner still holds the run (it writes the last log lines after a cancel)."""
    row = store.get_lock("pipeline-run:%d" % run_id)
    if row is None:
        return False
    owner = row.get("owner_pid")
    return not owner or row.get("owner_host") not in (None, socket.gethostname()) or _state().pid_alive(owner)


class _LogTail:
    """Echoes the run's log from the state store while the collection writes it."""

    def __init__(self, project, run_id, echo):
        self.project = project
        self.run_id = run_id
        self.echo = echo
        self.printed = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self):
        if self.echo is not None:
            self._thread.start()
        return self

    def _loop(self):
        store = None
        try:
            store = _state().StateStore.open(migrate=False)  # one connection for the whole run
            while not self._stop.wait(0.5):
                self.show(store)
        except Exception:  # noqa: BLE001 - the echo is a courtesy; the run goes on without it
            pass
        finally:
            if store is not None:
                store.close()

    def show(self, store):
        row = _run_by_id(store, self.project, self.run_id)
        text = (row or {}).get("logs") or ""
        if len(text) < self.printed:
            self.printed = len(text)  # the live tail of a line was replaced by its full output
        if len(text) > self.printed:
            self.echo(text[self.printed:])
            self.printed = len(text)

    def stop(self):
        if self.echo is not None and self._thread.is_alive():
            self._stop.set()
            self._thread.join(5)
            store = open_store()
            try:
                self.show(store)
            finally:
                store.close()


def execute_run(project, run_id, echo=None, verbose=0):
    """Run the queued run ``run_id`` through the playbook ``pipeline_run``; its final status.

    An interrupted playbook (Ctrl-C, or SIGTERM of a cancelled job) leaves the run as
    ``lxdctl pipeline cancel`` would, and the playbook runs once more for the same run, which
    then only removes the container and records the end (the lock of the dead runner is stale).
    """
    from lxdctl.progress import Progress
    from lxdctl.runner import run_playbook

    extravars = {"pipeline_project": project, "pipeline_run_id": int(run_id)}
    tail = _LogTail(project, run_id, echo).start()
    interrupted, result = False, None
    try:
        result = run_playbook(PLAYBOOK, extravars, verbosity=verbose, progress=Progress(enabled=verbose > 0))
        interrupted = result.status == "canceled"
    except KeyboardInterrupt:
        interrupted = True
    store = open_store()
    try:
        row = _run_by_id(store, project, run_id)
        if interrupted and row is not None and row["status"] not in TERMINAL:
            store.update_pipeline_run(run_id, status="cancelled")
        if interrupted or (row is not None and row["status"] not in TERMINAL):
            if store.get_lock("pipeline-run:%d" % int(run_id)) is not None and not runner_active(store, run_id):
                run_playbook(PLAYBOOK, extravars, progress=Progress(enabled=False))
        row = _run_by_id(store, project, run_id)
        if row is not None and row["status"] not in TERMINAL and result is not None and not result.ok \
                and not runner_active(store, run_id):
            # the playbook stopped before it took the run (nothing ran): say why, in the run
            store.update_pipeline_run(run_id, status="failed", logs=(row.get("logs") or "") + "error: %s\n" % (
                result.failed_msg or "the playbook %s ended with status %s" % (PLAYBOOK, result.status)))
            row = _run_by_id(store, project, run_id)
    finally:
        store.close()
        tail.stop()
    if interrupted and result is None:
        raise KeyboardInterrupt("cancelled")
    return row["status"] if row else "cancelled"

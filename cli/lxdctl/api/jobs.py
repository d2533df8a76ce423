"""Durable background jobs.

``register_kind(name, func)`` declares a kind; ``func(payload, emit)`` runs one job and returns
its result (JSON data) or raises; ``emit(event_dict)`` stores an event (``job_events``) that the
WebSocket ``/api/jobs/:id/events`` streams live.  ``enqueue(kind, payload, project, actor)``
stores a ``queued`` job and returns its id at once.

How a job runs, and why a restart neither loses nor repeats one:

* The server's dispatcher claims the oldest queued job with one conditional UPDATE
  (``status 'queued' -> 'running'``, ``attempts + 1``) inside a write transaction, so two
  dispatchers (or a restarted one) can never claim the same job.
* The claimed job runs in its own worker process (``python -m lxdctl.api.worker ID ATTEMPT``)
  in a new session, whose pid and start time are stored on the job.  The worker, not the
  server, writes the final status, guarded by ``status = 'running' AND attempts = ATTEMPT``.
* ``kill -9`` of the server does not touch the worker: it finishes the job and records the
  result.  A restarted server *adopts* running jobs whose worker is still alive (same pid and
  same process start time) and waits for them.
* A job left ``running`` whose worker is gone (the whole host rebooted, or the worker was
  killed) is re-queued exactly once (its playbooks are idempotent: a rerun completes what a
  crash interrupted); if it was already on its second attempt it is marked ``failed`` with
  ``error = "interrupted ..."``.  ``attempts`` counts the starts.
"""
import json
import os
import signal
import subprocess
import sys
import threading
import time

from lxdctl.api import db

STATUSES = ("queued", "running", "success", "failed", "cancelled")
TERMINAL = ("success", "failed", "cancelled")
MAX_ATTEMPTS = 2
JOB_COLUMNS = ("id", "kind", "payload", "project", "actor", "status", "created_at", "started_at", "completed_at",
               "result", "error", "attempts", "worker_pid", "worker_start", "cancel_requested")

_KINDS = {}
_wakeup = threading.Event()


def register_kind(name, func):
    """Declare job kind ``name``: ``func(payload, emit)`` runs it (in a worker process)."""
    _KINDS[name] = func
    return func


def kinds():
    return dict(_KINDS)


def has_kind(name):
    return name in _KINDS


# --- the store side -----------------------------------------------------------------
def enqueue(kind, payload, project=None, actor=None, store=None):
    """Store a queued job and wake the dispatcher; returns the job id."""
    if kind not in _KINDS:
        raise ValueError("unknown job kind %r" % kind)
    json.dumps(payload)
    with db.borrowed(store) as st:
        with st.transaction(what="enqueue a job"):
            cur = db.execute(st, "INSERT INTO jobs (kind, payload, project, actor, status, created_at, attempts) "
                                 "VALUES (?, ?, ?, ?, 'queued', ?, 0) RETURNING id",
                             (kind, db.dumps(payload), project, actor, db.now()))
            job_id = cur.fetchone()[0]
    _wakeup.set()
    return job_id


def get_job(job_id, store=None):
    with db.borrowed(store) as st:
        row = db.one(st, "SELECT %s FROM jobs WHERE id = ?" % ", ".join(JOB_COLUMNS), (int(job_id),))
    if row is None:
        return None
    row["payload"] = db.loads(row["payload"])
    row["result"] = db.loads(row["result"])
    row["cancel_requested"] = bool(row["cancel_requested"])
    return row


def public_job(row):
    """What the API shows of a job (no payload: it may hold values the caller sent)."""
    keep = ("id", "kind", "project", "actor", "status", "created_at", "started_at", "completed_at", "result",
            "error", "attempts")
    return dict((k, row.get(k)) for k in keep)


def list_jobs(project=None, limit=50, store=None):
    with db.borrowed(store) as st:
        sql = "SELECT id FROM jobs"
        params = []
        if project is not None:
            sql += " WHERE project = ?"
            params.append(project)
        ids = [r["id"] for r in db.rows(st, sql + " ORDER BY id DESC LIMIT ?", params + [int(limit)])]
        return [get_job(i, st) for i in ids]


def events(job_id, after=0, store=None, limit=500):
    with db.borrowed(store) as st:
        found = db.rows(st, "SELECT seq, at, event FROM job_events WHERE job_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                        (int(job_id), int(after), int(limit)))
    for row in found:
        row["event"] = db.loads(row["event"])
    return found


def cancel(job_id, store=None):
    """Cancel a queued job, or ask a running one to stop (its worker gets SIGTERM)."""
    with db.borrowed(store) as st:
        with st.transaction(what="cancel job"):
            done = db.execute(st, "UPDATE jobs SET status = 'cancelled', completed_at = ?, error = ? "
                                  "WHERE id = ? AND status = 'queued'",
                              (db.now(), "cancelled before it started", int(job_id))).rowcount
            if not done:
                db.execute(st, "UPDATE jobs SET cancel_requested = ? WHERE id = ? AND status = 'running'",
                           (True, int(job_id)))
        row = get_job(job_id, st)
    if row and row["status"] == "running" and row["worker_pid"] and worker_alive(row["worker_pid"], row["worker_start"]):
        try:
            os.killpg(row["worker_pid"], signal.SIGTERM)  # the worker records "cancelled"
        except OSError:
            pass
    return row


# --- process identity ---------------------------------------------------------------
def process_start(pid):
    """The start time (clock ticks since boot) of ``pid``, or None: tells a pid apart from its reuse."""
    try:
        with open("/proc/%d/stat" % pid) as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
    except (IOError, OSError, IndexError):
        return None
    if fields[0] == "Z":
        return None
    return fields[19]


def worker_alive(pid, start):
    return bool(pid) and start is not None and process_start(int(pid)) == start


JOB_ENV = "LXDCTL_JOB"


def job_marker(job_id, attempt):
    return "%d.%d" % (job_id, attempt)


def kill_job_processes(job_id, attempt, sig=signal.SIGKILL):
    """Kill every process left from attempt ``attempt`` of the job: the worker puts
    ``LXDCTL_JOB=<id>.<attempt>`` in its environment, and every descendant inherits it (also
    ansible-playbook, which ansible-runner starts in a session of its own).  Returns the pids."""
    needle = ("\0%s=%s\0" % (JOB_ENV, job_marker(job_id, attempt))).encode()
    killed = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open("/proc/%s/environ" % entry, "rb") as handle:
                environ = b"\0" + handle.read()
        except (IOError, OSError):
            continue
        if needle in environ:
            try:
                os.kill(int(entry), sig)
                killed.append(int(entry))
            except OSError:
                pass
    return killed


# --- the dispatcher (in the server) -------------------------------------------------
class Dispatcher:
    """Claims queued jobs and starts worker processes, at most ``max_workers`` at a time."""

    def __init__(self, max_workers=2, env=None):
        self.max_workers = max_workers
        self.env = env
        self.children = {}  # job id -> Popen
        self.adopted = {}  # job id -> (pid, start)
        self._stop = threading.Event()
        self._thread = None
        self.store = None

    def start(self):
        """Recover, then claim and run jobs in a thread (``max_workers`` 0: accept jobs, run none)."""
        if self.max_workers <= 0:
            return
        ready = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(ready,), name="lxdctl-dispatcher", daemon=True)
        self._thread.start()
        ready.wait(30)

    def stop(self):
        self._stop.set()
        _wakeup.set()

    def recover(self):
        """Jobs left ``running``: adopt a live worker; re-queue once or fail a dead one's job."""
        st = self.store
        for row in db.rows(st, "SELECT id, attempts, worker_pid, worker_start FROM jobs WHERE status = 'running'"):
            if row["id"] in self.children:
                continue
            if worker_alive(row["worker_pid"], row["worker_start"]):
                self.adopted[row["id"]] = (row["worker_pid"], row["worker_start"])
                continue
            self._interrupted(row["id"], row["attempts"])

    def _interrupted(self, job_id, attempts):
        kill_job_processes(job_id, attempts)  # nothing of the dead attempt may run on beside a retry
        st = self.store
        with st.transaction(what="recover job %s" % job_id):
            if attempts < MAX_ATTEMPTS:
                db.execute(st, "UPDATE jobs SET status = 'queued', worker_pid = NULL, worker_start = NULL, error = ? "
                               "WHERE id = ? AND status = 'running' AND attempts = ?",
                           ("interrupted on attempt %d (its worker died); re-queued once" % attempts, job_id, attempts))
            else:
                db.execute(st, "UPDATE jobs SET status = 'failed', completed_at = ?, error = ? "
                               "WHERE id = ? AND status = 'running' AND attempts = ?",
                           (db.now(), "interrupted: its worker died on attempt %d; not retried again" % attempts,
                            job_id, attempts))

    def claim(self):
        st = self.store
        with st.transaction(what="claim a job"):
            row = db.one(st, "SELECT id, attempts FROM jobs WHERE status = 'queued' ORDER BY id LIMIT 1")
            if row is None:
                return None
            claimed = db.execute(st, "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = ?, "
                                     "worker_pid = NULL, worker_start = NULL WHERE id = ? AND status = 'queued'",
                                 (db.now(), row["id"])).rowcount
            if claimed != 1:
                return None
            return row["id"], row["attempts"] + 1

    def _spawn(self, job_id, attempt):
        env = dict(self.env or os.environ)
        env["LXDCTL_LOCAL"] = "1"
        env[JOB_ENV] = job_marker(job_id, attempt)
        proc = subprocess.Popen([sys.executable, "-m", "lxdctl.api.worker", str(job_id), str(attempt)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=None,
                                start_new_session=True, env=env, close_fds=True)
        start = process_start(proc.pid)
        with self.store.transaction(what="record the worker of job %s" % job_id):
            db.execute(self.store, "UPDATE jobs SET worker_pid = ?, worker_start = ? WHERE id = ? AND attempts = ?",
                       (proc.pid, start, job_id, attempt))
        self.children[job_id] = proc

    def _reap(self):
        for job_id, proc in list(self.children.items()):
            if proc.poll() is None:
                continue
            del self.children[job_id]
            self._check_finished(job_id)
        for job_id, (pid, start) in list(self.adopted.items()):
            if worker_alive(pid, start):
                continue
            del self.adopted[job_id]
            self._check_finished(job_id)

    def _check_finished(self, job_id):
        row = db.one(self.store, "SELECT status, attempts FROM jobs WHERE id = ?", (job_id,))
        if row and row["status"] == "running":  # the worker died without recording an outcome
            self._interrupted(job_id, row["attempts"])
            _wakeup.set()

    def _loop(self, ready):
        try:
            self.store = db.state().StateStore.open()  # this thread's own connection
            self.recover()
        finally:
            ready.set()
        last_recover = time.monotonic()
        while not self._stop.is_set():
            _wakeup.wait(0.5)
            _wakeup.clear()
            try:
                self._reap()
                if time.monotonic() - last_recover > 10:
                    self.recover()
                    last_recover = time.monotonic()
                while len(self.children) + len(self.adopted) < self.max_workers:
                    claimed = self.claim()
                    if claimed is None:
                        break
                    self._spawn(*claimed)
            except Exception as exc:  # noqa: BLE001 - the dispatcher must keep going
                sys.stderr.write("lxdctl serve: dispatcher: %s\n" % exc)
                time.sleep(1)


# --- the worker side ----------------------------------------------------------------
class Emitter:
    """``emit(event)`` for one job attempt: numbered events in ``job_events``."""

    def __init__(self, store, job_id):
        self.store = store
        self.job_id = job_id
        top = db.one(store, "SELECT MAX(seq) AS n FROM job_events WHERE job_id = ?", (job_id,))
        self.seq = (top["n"] if top else 0) or 0
        self._lock = threading.Lock()

    def __call__(self, event):
        with self._lock:
            self.seq += 1
            with self.store.transaction(what="store a job event"):
                db.execute(self.store, "INSERT INTO job_events (job_id, seq, at, event) VALUES (?, ?, ?, ?)",
                           (self.job_id, self.seq, db.now(), db.dumps(event)))


def run_worker(job_id, attempt):
    """Run job ``job_id`` (attempt ``attempt``) in this process and record its outcome."""
    from lxdctl.api import extensions

    extensions.load()
    st = db.state().StateStore.open()
    row = get_job(job_id, st)
    if row is None or row["status"] != "running" or row["attempts"] != attempt:
        return 2  # not ours (any more): never run a job twice
    emit = Emitter(st, job_id)

    def on_term(signum, frame):
        raise KeyboardInterrupt("cancelled")

    signal.signal(signal.SIGTERM, on_term)
    emit({"type": "start", "attempt": attempt, "kind": row["kind"]})
    status, result, error = "success", None, None
    try:
        func = _KINDS.get(row["kind"])
        if func is None:
            raise RuntimeError("unknown job kind %s" % row["kind"])
        result = func(row["payload"] or {}, emit)
    except KeyboardInterrupt:
        status, error = "cancelled", "cancelled while running"
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        kill_job_processes(job_id, attempt, signal.SIGTERM)
    except Exception as exc:  # noqa: BLE001 - the job's failure is its result
        status, error = "failed", str(getattr(exc, "msg", None) or exc) or type(exc).__name__
    if status == "success" and isinstance(result, dict) and result.get("exit_code") not in (None, 0):
        status = "failed"
        error = result.get("error") or "exit code %s" % result.get("exit_code")
    if status != "success" and (get_job(job_id, st) or {}).get("cancel_requested"):
        # ansible-runner replaces our SIGTERM handler with its own and reports "canceled"
        status, error = "cancelled", "cancelled while running"
        kill_job_processes(job_id, attempt, signal.SIGTERM)
    emit({"type": "end", "status": status, "error": error})
    with st.transaction(what="record the outcome of job %s" % job_id):
        db.execute(st, "UPDATE jobs SET status = ?, completed_at = ?, result = ?, error = ? "
                       "WHERE id = ? AND status = 'running' AND attempts = ?",
                   (status, db.now(), db.dumps(result), error, job_id, attempt))
    st.close()
    return 0


# --- built-in kinds -----------------------------------------------------------------
def _playbook_kind(payload, emit):
    """Run ``playbooks/<playbook>.yml`` with ``extravars``; ansible-runner events go to ``emit``."""
    from lxdctl.api.cli_bridge import EmittingProgress
    from lxdctl.runner import run_playbook

    progress = EmittingProgress(emit)
    result = run_playbook(payload["playbook"], payload.get("extravars") or {}, check=bool(payload.get("check")),
                          progress=progress)
    out = {"rc": result.rc, "status": result.status, "changed": result.changed}
    if not result.ok:
        raise RuntimeError("%s failed: %s" % (result.failed_task or "the playbook",
                                              result.failed_msg or "status %s (rc=%s)" % (result.status, result.rc)))
    return out


def _cli_kind(payload, emit):
    """Run an lxdctl command (``argv``) exactly as the CLI does; its output and runner events go to ``emit``."""
    from lxdctl.api.cli_bridge import run_cli_job

    return run_cli_job(payload["argv"], emit)


register_kind("playbook", _playbook_kind)
register_kind("cli", _cli_kind)

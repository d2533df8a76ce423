"""One pipeline run: an ephemeral LXD container from the project's runtime image, the source
of a branch/commit pushed in, stages one by one, logs and artifacts kept per run.

Nothing of the user runs on the host: the host uses git (argument lists) to make the source
archive, and the only host-side commands are lxdctl's own ``deploy``, ``health-check`` and
``smoke-test``.  Each script line runs inside the run's own container through ``/bin/sh -c``.

A run row (``pipeline_runs``) moves queued -> running -> success | failed | cancelled.  Its
``artifacts`` JSON keeps the run's facts: branch, commit, stages and their outcome, the files
copied out (under ``/var/lib/lxdctl/pipelines/<project>/<run>/``) and the environment URL.
"""
import os
import shutil
import socket
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

from lxdctl.collection import module_utils
from lxdctl.pipelines import notify, spec as specmod

PIPELINE = "default"  # one pipeline per project; its row's name in the pipelines table
PIPELINE_DIR = os.environ.get("LXDCTL_PIPELINE_DIR", "/var/lib/lxdctl/pipelines")
WORKSPACE = "/workspace"
CI_DIR = "/var/lib/lxdctl-ci"  # lxdctl's own files in the run container (not /tmp: boot cleans it)
BOOT_TIMEOUT = 60
LOG_CAP = int(os.environ.get("LXDCTL_PIPELINE_LOG_CAP", str(256 * 1024)))  # bytes of log per run
LINE_CAP = int(os.environ.get("LXDCTL_PIPELINE_LINE_CAP", str(64 * 1024)))  # bytes of output per script line
LINE_MIN_CAP = 1024
LOG_RESERVE = 64 * 1024
ARTIFACT_CAP = 64 * 1024 * 1024
TERMINAL = ("success", "failed", "cancelled")
# Fixed wrapper text: the user's line is "$1" (run by /bin/sh -c in the container).  Its output
# goes through a FIFO to head (capped at "$2" bytes: endless output then dies of SIGPIPE) and
# tee (a copy in a file for the live log).  head and tee are started before the line, which
# only begins once head reads: a fork bomb cannot starve them of processes.
_WRAPPER = ('rm -f /var/lib/lxdctl-ci/pipe && mkfifo -m 600 /var/lib/lxdctl-ci/pipe || exit 125\n'
            'head -c "$2" </var/lib/lxdctl-ci/pipe | tee /var/lib/lxdctl-ci/out &\n'
            '/bin/sh -c "$1" </dev/null >/var/lib/lxdctl-ci/pipe 2>&1\n'
            'rc=$?\n'
            'wait\n'
            'exit "$rc"\n')


class RunError(Exception):
    pass


class Stopped(Exception):
    """The stage was stopped: ``reason`` is ``timeout`` or ``cancelled``."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _state():
    return module_utils("_state")


def _lxd():
    return module_utils("_lxd")


def _helper():
    from lxdctl.commands.deploy import helper

    return helper()


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
    return next((row for row in store.list_pipeline_runs(project, PIPELINE, limit=1000000) if row["id"] == run_id), None)


# --- source ------------------------------------------------------------------------------
class Source:
    """A host-side clone of the project's repository in a private temporary directory."""

    def __init__(self, repo, branch, commit=None):
        h = _helper()
        try:
            self.url = h.check_repo_url(repo)
            self.branch = h.check_branch(branch)
            commit = h.check_commit(commit) if commit else None
        except h.Failure as exc:
            raise RunError(str(exc))
        self.work = tempfile.mkdtemp(prefix="lxdctl-pipeline-")
        clone = os.path.join(self.work, "clone")
        try:
            h.git(["clone", "--quiet", "--no-checkout", "--no-tags", "--", self.url, clone], "git clone of %s" % self.url)
            ref = commit or "refs/remotes/origin/%s" % self.branch
            try:
                self.commit = h.git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"],
                                    "rev-parse", cwd=clone)
            except h.Failure:
                raise RunError("the %s %s does not exist in %s" % ("commit" if commit else "branch", commit or self.branch,
                                                                   self.url))
        except h.Failure as exc:
            self.close()
            raise RunError(str(exc))
        except BaseException:
            self.close()
            raise
        self.clone = clone

    def read(self, path):
        """The text of ``path`` at the commit, or None when it is not there."""
        proc = subprocess.run(["git", "-C", self.clone, "show", "--end-of-options", "%s:%s" % (self.commit, path)],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=_helper().git_env(), timeout=60)
        return proc.stdout.decode("utf-8", "replace") if proc.returncode == 0 else None

    def archive(self):
        path = os.path.join(self.work, "source.tar")
        _helper().git(["archive", "--format=tar", "-o", path, self.commit], "git archive", cwd=self.clone)
        return path

    def close(self):
        shutil.rmtree(self.work, ignore_errors=True)


def load_spec(project_row, pipeline_row, branch=None, commit=None):
    """``(Source, spec)`` of the pipeline file at the branch/commit; the caller closes Source."""
    config = pipeline_row.get("config") or {}
    filename = config.get("file") or specmod.DEFAULT_FILE
    if not project_row.get("git_repository"):
        raise RunError("project %s has no git repository (lxdctl create --git URL)" % project_row["name"])
    source = Source(project_row["git_repository"], branch or config.get("branch") or project_row.get("git_branch") or "main",
                    commit)
    try:
        text = source.read(filename)
        if text is None:
            raise RunError("the pipeline file %s is not in %s at %s" % (filename, source.url, source.commit[:12]))
        return source, specmod.parse(text, filename)
    except specmod.SpecError as exc:
        source.close()
        raise RunError(str(exc))
    except BaseException:
        source.close()
        raise


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


class Runner:
    def __init__(self, project, run_id, echo=None):
        self.project = project
        self.run_id = run_id
        self.echo = echo or (lambda text: None)
        self.log = ""
        self.store = open_store()
        self.client = None
        self.container = None
        self.facts = {}
        self._last_flush = 0.0

    # logging ---------------------------------------------------------------------------
    def write(self, text, flush=False, output=False):
        """Append to the log.  Command output stops at LOG_CAP; lxdctl's own short lines
        (outcomes, errors) always fit in the reserve of LOG_RESERVE bytes."""
        cap = LOG_CAP if output else LOG_CAP + LOG_RESERVE
        if len(self.log) < cap:
            room = cap - len(self.log)
            if len(text) > room:
                text = text[:room] + "\n[log truncated at %d bytes]\n" % cap
            self.log += text
            self.echo(text)
        if flush or time.monotonic() - self._last_flush > 2:
            self.flush()

    def flush(self, **fields):
        self._last_flush = time.monotonic()
        self.store.update_pipeline_run(self.run_id, logs=self.log, artifacts=self.facts, **fields)

    def status(self):
        row = _run_by_id(self.store, self.project, self.run_id)
        return row["status"] if row else "cancelled"

    # main ------------------------------------------------------------------------------
    def execute(self):
        state = _state()
        lock = "pipeline-run:%d" % self.run_id
        try:
            self.store.acquire_lock(lock, ttl=4 * 3600, pid=os.getpid())
        except Exception:  # noqa: BLE001 - held by another worker: that one runs it
            try:
                return self.status()
            finally:
                self.store.close()
        try:
            row = _run_by_id(self.store, self.project, self.run_id)
            if row is not None and row["status"] == "running":
                return self._interrupted(row)
            if row is None or row["status"] != "queued":
                return row["status"] if row else "cancelled"  # already run (or cancelled): never twice
            self.number = row["run_number"]
            self.facts = dict(row.get("artifacts") or {})
            self.facts.setdefault("stages", [])
            self.facts.setdefault("files", [])
            self.store.update_pipeline_run(self.run_id, status="running", started_at=state._ts(state._utcnow()))
            final = self._run()
        finally:
            try:
                self.store.release_lock(lock, pid=os.getpid())
            finally:
                self.store.close()
        return final

    def _interrupted(self, row):
        """A run left ``running`` by a runner that died (we hold its lock now): never rerun it;
        remove its container and mark it failed."""
        self.number = row["run_number"]
        self.container = container_name(self.project, self.number)
        try:
            self.client = _lxd().connect({})
        except Exception:  # noqa: BLE001
            self.client = None
        self._remove_container()
        self.log = row.get("logs") or ""
        self.facts = dict(row.get("artifacts") or {})
        self.write("\nrun #%d: failed (interrupted: its runner stopped)\n" % self.number)
        self.flush(status="failed")
        return "failed"

    def _run(self):
        final, error, spec, source, interrupted = "failed", None, None, None, False
        try:
            project = self.store.get_project(self.project)
            pipeline = self.store.get_pipeline(self.project, PIPELINE)
            self.write("lxdctl pipeline run #%d of %s (%s)\n" % (self.number, self.project, self.facts.get("trigger")))
            source, spec = load_spec(project, pipeline, self.facts.get("branch"), self.facts.get("commit"))
            self.facts.update(branch=source.branch, commit=source.commit)
            variables = {"PROJECT": self.project, "BRANCH": source.branch, "COMMIT": source.commit,
                         "DOMAIN": specmod.base_domain(self.project, project.get("domain"))}
            self.write("source: %s branch %s commit %s\n" % (source.url, source.branch, source.commit), flush=True)
            stages = [s for s in specmod.STAGES if s in spec["stages"]]
            if self.facts.get("only"):
                stages = [s for s in stages if s in self.facts["only"]]
                if not stages:
                    raise RunError("the pipeline file has no %s stage" % " or ".join(self.facts["only"]))
            self._start_container(project, spec, source)
            final = "success"
            for name in stages:
                if not self._stage(name, spec, variables, project):
                    final = "failed"
                    break
        except Stopped as exc:
            final = "cancelled" if exc.reason == "cancelled" else "failed"
        except KeyboardInterrupt:  # Ctrl-C of `pipeline trigger`, SIGTERM of a cancelled job
            final, interrupted = "cancelled", True
            self.write("\nthe run was interrupted\n")
        except RunError as exc:
            error = str(exc)
        except Exception as exc:  # noqa: BLE001 - any failure ends the run as failed, with its message
            error = getattr(exc, "msg", None) or "%s: %s" % (type(exc).__name__, exc)
        finally:
            if source is not None:
                source.close()
            self._remove_container()
        if error:
            self.write("error: %s\n" % error)
        if self.status() == "cancelled":
            final = "cancelled"
        self.write("run #%d: %s\n" % (self.number, final))
        self.flush(status=final)
        if interrupted:
            raise KeyboardInterrupt("cancelled")
        if final in ("success", "failed"):
            pipeline = self.store.get_pipeline(self.project, PIPELINE) or {}
            urls = dict((pipeline.get("config") or {}).get("notify") or {})
            urls.update((spec or {}).get("notify") or {})
            if urls:
                for line in notify.send_all(urls, notify.message(self.project, self.number, final, self.facts)):
                    self.write(line + "\n")
                self.flush()
        return final

    # container -------------------------------------------------------------------------
    def _start_container(self, project, spec, source):
        lxd_cfg = (module_utils("_platform_config").load() or {}).get("lxd") or {}
        runtime = project.get("runtime") or "python"
        image = (lxd_cfg.get("images") or {}).get(runtime) or "lxdctl-%s" % runtime
        lxd = _lxd()
        self.client = lxd.connect({})
        self.container = container_name(self.project, self.number)
        limits = spec["limits"]
        body = {"name": self.container, "type": "container", "ephemeral": True,
                "source": {"type": "image", "alias": image},
                "profiles": [lxd_cfg.get("profile") or "lxdctl"],
                "config": {"limits.cpu": str(limits["cpu"]), "limits.memory": limits["memory"],
                           "limits.memory.enforce": "hard", "limits.processes": str(limits["processes"]),
                           "security.nesting": "false", "security.privileged": "false",
                           "user.lxdctl.pipeline-run": str(self.run_id)}}
        self.write("container: %s (ephemeral, image %s, cpu %s, memory %s, processes %s)\n"
                   % (self.container, image, limits["cpu"], limits["memory"], limits["processes"]), flush=True)
        context = "Failed to create the run container %s" % self.container
        try:
            response = self.client.api.instances.post(json=body)
        except Exception as exc:  # noqa: BLE001
            raise lxd.lxd_error(context, exc)
        lxd._operation_wait(self.client, response, context)
        lxd.set_instance_state(self.client, self.container, "start")
        self._wait_booted()
        rc, out, err = lxd.instance_exec(self.client, self.container, ["mkdir", "-p", "-m", "700", CI_DIR])
        if rc != 0:
            raise RunError("could not prepare %s: %s" % (self.container, (err or out).decode("utf-8", "replace")))
        archive = source.archive()
        with open(archive, "rb") as handle:
            lxd.write_file(self.client, self.container, CI_DIR + "/source.tar", handle.read(), mode=0o600, uid=0, gid=0)
        rc, out, err = lxd.instance_exec(self.client, self.container,
                                         ["/bin/sh", "-c", 'mkdir -p "$1" && tar -xf "$2" -C "$1" && rm -f "$2"', "x",
                                          WORKSPACE, CI_DIR + "/source.tar"])
        if rc != 0:
            raise RunError("could not unpack the source in %s: %s" % (self.container, (err or out).decode("utf-8", "replace")))

    def _wait_booted(self):
        """Wait until the container's systemd finished booting (its tmpfiles clean /tmp at boot,
        which must not happen in the middle of a build); images without systemd go on at once."""
        lxd = _lxd()
        deadline = time.monotonic() + BOOT_TIMEOUT
        while time.monotonic() < deadline:
            try:
                rc, out, _err = lxd.instance_exec(self.client, self.container, ["systemctl", "is-system-running", "--wait"])
            except Exception:  # noqa: BLE001 - no systemctl in the image
                return
            if out.decode("utf-8", "replace").strip() in ("running", "degraded", "maintenance", "stopping") or rc in (126, 127):
                return
            time.sleep(0.2)
        self.write("the container did not finish booting within %d seconds; going on\n" % BOOT_TIMEOUT)

    def _remove_container(self):
        if self.client is None or self.container is None:
            return
        try:
            _lxd().delete_instance(self.client, self.container)
        except Exception:  # noqa: BLE001 - an ephemeral container that stopped is already gone
            pass

    def _kill_container(self):
        try:
            client = _lxd().connect({})
            _lxd().set_instance_state(client, self.container, "stop", timeout=5, force=True)
        except Exception:  # noqa: BLE001
            pass

    # stages ----------------------------------------------------------------------------
    def _stage(self, name, spec, variables, project):
        stage = spec["stages"][name]
        timeout = stage.get("timeout") or spec["timeout"]
        deadline = time.monotonic() + timeout
        started = time.monotonic()
        record = {"name": name, "status": "running"}
        self.facts["stages"].append(record)
        self.write("\n== stage %s (timeout %ds) ==\n" % (name, timeout), flush=True)
        env = dict(spec["variables"])
        env.update(variables)
        env.update(CI="true", LXDCTL_PIPELINE_RUN=str(self.number), LXDCTL_STAGE=name, HOME="/root",
                   PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
        ok = True
        try:
            for line in stage["script"]:
                line = specmod.substitute(line, variables)
                self.write("$ %s\n" % line)
                rc = self._exec_line(line, env, deadline, timeout)
                if rc != 0:
                    self.write("exit status %d\n" % rc)
                    ok = False
                    break
            if ok and name == "deploy":
                ok = self._host(["deploy", self.project, "--branch", variables["BRANCH"], "--commit", variables["COMMIT"]],
                                deadline, timeout)
            if ok and name == "verify":
                ok = self._host(["health-check", self.project, "--retries", "5"], deadline, timeout) and \
                    self._host(["smoke-test", self.project], deadline, timeout)
            if stage.get("environment"):
                env_out = dict((k, specmod.substitute(v, variables)) for k, v in stage["environment"].items())
                self.facts["environment"] = env_out
                self.write("environment: %s\n" % " ".join("%s=%s" % kv for kv in sorted(env_out.items())))
            self._collect(name, stage)
        except Stopped as exc:
            record.update(status=exc.reason, seconds=round(time.monotonic() - started, 1))
            if exc.reason == "timeout":
                self.write("\nstage %s stopped: timed out after %d seconds (the run container was killed)\n" % (name, timeout))
            else:
                self.write("\nstage %s stopped: the run was cancelled\n" % name)
            raise
        record.update(status="success" if ok else "failed", seconds=round(time.monotonic() - started, 1))
        self.write("stage %s: %s (%.1fs)\n" % (name, record["status"], record["seconds"]), flush=True)
        return ok

    def _wait(self, thread, deadline, timeout, on_stop):
        """Wait for ``thread``; kill the work on timeout or cancel."""
        polled = 0.0
        while thread.is_alive():
            thread.join(0.5)
            if not thread.is_alive():
                break
            reason = None
            if time.monotonic() > deadline:
                reason = "timeout"
            elif time.monotonic() - polled > 1.5:
                polled = time.monotonic()
                if self.status() == "cancelled":
                    reason = "cancelled"
                else:
                    self._live_output()
            if reason:
                on_stop()
                thread.join(30)
                raise Stopped(reason)

    def _live_output(self):
        try:
            found = _lxd().read_file(self.client_live(), self.container, "/var/lib/lxdctl-ci/out")
        except Exception:  # noqa: BLE001
            return
        if found:
            self.store.update_pipeline_run(self.run_id, logs=self.log + found["content"].decode("utf-8", "replace"))

    def client_live(self):
        if getattr(self, "_live_client", None) is None:
            self._live_client = _lxd().connect({})
        return self._live_client

    def _exec_line(self, line, env, deadline, timeout):
        cap = max(min(LINE_CAP, LOG_CAP - len(self.log)), LINE_MIN_CAP)
        result = {}

        def work():
            try:
                client = _lxd().connect({})
                result["value"] = _lxd().instance_exec(client, self.container,
                                                       ["/bin/sh", "-c", _WRAPPER, "lxdctl-step", line, str(cap + 1)],
                                                       environment=env, cwd=WORKSPACE)
            except Exception as exc:  # noqa: BLE001
                result["error"] = exc

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        self._wait(thread, deadline, timeout, self._kill_container)
        if "error" in result:
            raise RunError(getattr(result["error"], "msg", None) or str(result["error"]))
        rc, out, _err = result["value"]
        text = out[:cap].decode("utf-8", "replace")
        if text and not text.endswith("\n"):
            text += "\n"
        self.write(text, output=True)
        if len(out) > cap:
            self.write("[output truncated at %d bytes: the command was stopped (SIGPIPE)]\n" % cap)
        return rc

    def _host(self, args, deadline, timeout):
        """lxdctl's own command ``args`` on the host (the same path as typing it), output logged."""
        exe = os.path.join(os.path.dirname(sys.executable), "lxdctl")
        argv = [exe] + args if os.path.exists(exe) else [sys.executable, "-c", "from lxdctl.main import cli; cli()"] + args
        self.write("$ lxdctl %s\n" % " ".join(args), flush=True)
        # LXDCTL_LOCAL: this host holds the state, so the command runs here even when a remote
        # server is configured for the user.
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=dict(os.environ, LXDCTL_LOCAL="1"))
        chunks = []

        def reader():
            for piece in iter(lambda: proc.stdout.read(4096), b""):
                chunks.append(piece)

        thread = threading.Thread(target=reader, daemon=True)
        thread.start()

        def kill():
            try:
                os.killpg(proc.pid, 9)
            except OSError:
                pass

        self._wait(thread, deadline, timeout, kill)
        rc = proc.wait()
        self.write(b"".join(chunks)[-LINE_CAP:].decode("utf-8", "replace"), output=True)
        if rc != 0:
            self.write("exit status %d\n" % rc)
        return rc == 0

    def _collect(self, stage_name, stage):
        paths = [("artifacts", p) for p in stage.get("artifacts") or []] + [("coverage", p) for p in stage.get("coverage") or []]
        if not paths:
            return
        dest = os.path.join(run_dir(self.project, self.number), stage_name)
        lxd = _lxd()
        for kind, path in paths:
            rc, out, err = lxd.instance_exec(
                self.client, self.container,
                ["/bin/sh", "-c", 'cd "$1" && [ -e "$2" ] && tar -cf - -- "$2" | head -c "$3" >/var/lib/lxdctl-ci/artifact.tar',
                 "x", WORKSPACE, path, str(ARTIFACT_CAP + 1)])
            if rc != 0:
                self.write("%s %s: not found, nothing kept\n" % (kind, path))
                continue
            found = lxd.read_file(self.client, self.container, "/var/lib/lxdctl-ci/artifact.tar")
            data = found["content"] if found else b""
            if len(data) > ARTIFACT_CAP:
                self.write("%s %s: larger than %d bytes, not kept\n" % (kind, path, ARTIFACT_CAP))
                continue
            os.makedirs(dest, mode=0o750, exist_ok=True)
            files = _extract(data, dest)
            rel = [os.path.join(stage_name, f) for f in files]
            self.facts["files"].extend(rel)
            self.facts.setdefault(kind, []).append(os.path.join(stage_name, path))
            self.write("%s %s: %d file%s kept in %s\n" % (kind, path, len(files), "" if len(files) == 1 else "s", dest))


def _extract(data, dest):
    """Unpack a tar the container made: regular files and directories only, inside ``dest``."""
    import io

    names = []
    root = os.path.realpath(dest)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for member in tar.getmembers():
            target = os.path.realpath(os.path.join(root, member.name))
            if member.name.startswith("/") or not (target == root or target.startswith(root + os.sep)):
                continue
            if member.isdir():
                os.makedirs(target, mode=0o750, exist_ok=True)
            elif member.isfile():
                os.makedirs(os.path.dirname(target), mode=0o750, exist_ok=True)
                source = tar.extractfile(member)
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o640)
                with os.fdopen(fd, "wb") as handle:
                    shutil.copyfileobj(source, handle)
                names.append(os.path.relpath(target, root))
    return sorted(names)


def runner_active(store, run_id):
    """Whether a runner still holds the run (it writes the last log lines after a cancel)."""
    row = store.get_lock("pipeline-run:%d" % run_id)
    if row is None:
        return False
    owner = row.get("owner_pid")
    return not owner or row.get("owner_host") not in (None, socket.gethostname()) or _state().pid_alive(owner)


def execute_run(project, run_id, echo=None):
    """Run a queued run to its end; returns the final status."""
    return Runner(project, run_id, echo=echo).execute()


def cancel(project, store=None):
    """Mark the project's queued and running runs cancelled; the runner kills its container."""
    own = store is None
    store = store or open_store()
    try:
        done = []
        for row in store.list_pipeline_runs(project, PIPELINE, limit=100):
            if row["status"] in ("queued", "running"):
                store.update_pipeline_run(row["id"], status="cancelled")
                done.append(row["run_number"])
        return done
    finally:
        if own:
            store.close()

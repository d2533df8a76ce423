"""Running lxdctl commands for the server: as jobs (kind ``cli``) and for the remote CLI.

A command runs in a subprocess (``python -m lxdctl.api.clirun``) with an argument list,
never a shell, so it builds the same extra vars, runs the same playbooks and prints the same
output as on the host.  Arguments are built by ``argv_for`` with ``--option=value`` and a
``--`` before positional arguments, so no value can be read as an option.
"""
import json
import os
import selectors
import subprocess
import sys

from lxdctl.progress import Progress

OUTPUT_LIMIT = 1 << 20


def argv_for(command, positionals=(), options=None, flags=()):
    """``command`` (a list of words) + ``--name=value`` options + flags + ``--`` + positionals."""
    argv = list(command)
    for name, value in (options or {}).items():
        if value is None or value == "":
            continue
        if isinstance(value, (list, tuple)):
            argv.extend("--%s=%s" % (name, v) for v in value)
        else:
            argv.append("--%s=%s" % (name, value))
    argv.extend("--%s" % f for f in flags)
    if positionals:
        argv.append("--")
        argv.extend(str(p) for p in positionals)
    return argv


def child_env(extra=None):
    env = dict(os.environ)
    for key in ("LXDCTL_SERVER", "LXDCTL_TOKEN"):
        env.pop(key, None)
    env["LXDCTL_LOCAL"] = "1"
    env.update(extra or {})
    return env


def spawn(argv, events=True, env=None, cwd=None, stdin=False):
    """Start the command; returns ``(proc, events_read_fd or None)``.  ``stdin``: give it a pipe."""
    rfd = wfd = None
    extra = dict(env or {})
    if events:
        rfd, wfd = os.pipe()
        extra["LXDCTL_EVENTS_FD"] = str(wfd)
    proc = subprocess.Popen([sys.executable, "-m", "lxdctl.api.clirun"] + list(argv),
                            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=child_env(extra),
                            pass_fds=(wfd,) if wfd is not None else (), start_new_session=True, cwd=cwd)
    if wfd is not None:
        os.close(wfd)
    return proc, rfd


def stream(proc, rfd, on_chunk):
    """Call ``on_chunk(name, bytes)`` for stdout / stderr / events data until the command ends."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
    sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
    if rfd is not None:
        sel.register(rfd, selectors.EVENT_READ, "events")
    open_count = len(sel.get_map())
    while open_count:
        for key, _ in sel.select():
            fd = key.fd
            data = os.read(fd, 65536)
            if not data:
                sel.unregister(key.fileobj)
                open_count -= 1
                continue
            on_chunk(key.data, data)
    sel.close()
    if rfd is not None:
        os.close(rfd)
    return proc.wait()


def run_cli_job(argv, emit):
    """The job kind ``cli``: output lines and runner events become job events."""
    proc, rfd = spawn(argv)
    buffers = {"stdout": b"", "stderr": b"", "events": b""}
    collected = {"stdout": [], "stderr": []}
    size = [0]

    def on_chunk(name, data):
        buffers[name] += data
        *lines, buffers[name] = buffers[name].split(b"\n")
        for line in lines:
            deliver(name, line)

    def deliver(name, line):
        text = line.decode("utf-8", "replace")
        if name == "events":
            try:
                emit(json.loads(text))
            except ValueError:
                pass
            return
        if size[0] < OUTPUT_LIMIT:
            collected[name].append(text)
            size[0] += len(line)
        emit({"type": name, "line": text})

    try:
        rc = stream(proc, rfd, on_chunk)
    except KeyboardInterrupt:
        try:
            os.killpg(proc.pid, 15)
        except OSError:
            pass
        proc.wait()
        raise
    for name, rest in buffers.items():
        if rest:
            deliver(name, rest)
    errors = [line for line in collected["stderr"] if line.startswith("Error:")]
    return {"exit_code": rc, "stdout": "\n".join(collected["stdout"]),
            "error": errors[-1][len("Error: "):] if errors else None}


class EmittingProgress(Progress):
    """Progress that also forwards trimmed ansible-runner events to ``emit``."""

    def __init__(self, emit):
        super().__init__(enabled=False)
        self._emit = emit

    def handle(self, event):
        from lxdctl.api.clirun import trim

        self._emit(trim(event))
        return super().handle(event)

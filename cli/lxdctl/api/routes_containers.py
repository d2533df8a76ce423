"""/api/containers/:id/exec and /logs, and the WebSocket /api/projects/:id/logs."""
import os
import signal

from lxdctl.api import cli_bridge
from lxdctl.api.routes_common import only_fields, require_project, run_sync
from lxdctl.api.routes_jobs import upgrade
from lxdctl.api.server import ApiError, Response, Streamed


def exec_command(req):
    """Run a command in the project's container: ``{"command": ["ls", "-l"], "root": false}``."""
    body = only_fields(req, ("command", "root"))
    command = body.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(c, str) and "\x00" not in c for c in command):
        raise ApiError(400, "command must be a non-empty list of strings")
    require_project(req, req.project)
    flags = ["root"] if body.get("root") is True else []
    rc, out, err = run_sync(cli_bridge.argv_for(["exec"], [req.project] + command, None, flags))
    return {"exit_code": rc, "stdout": out, "stderr": err}


def _tail(req):
    try:
        tail = int(req.q("tail", "100"))
    except ValueError:
        raise ApiError(400, "tail must be a number")
    if not 0 <= tail <= 100000:
        raise ApiError(400, "tail must be 0-100000")
    return tail


def container_logs(req):
    """The last ``?tail=N`` lines of the app's log (as ``lxdctl logs``)."""
    require_project(req, req.project)
    rc, out, err = run_sync(cli_bridge.argv_for(["logs"], [req.project], {"tail": _tail(req)}))
    if rc != 0:
        return Response(502, {"error": err.strip().splitlines()[-1] if err.strip() else "logs failed", "status": 502})
    return {"lines": out.splitlines()}


def live_logs(req):
    """WebSocket: the app's log lines live (``lxdctl logs --follow``), one text frame per line."""
    require_project(req, req.project)
    tail = _tail(req)
    flags = ["follow"] + (["system"] if (req.q("system") or "").lower() in ("1", "true", "yes") else [])

    def run(req):
        conn = upgrade(req)
        proc, rfd = cli_bridge.spawn(cli_bridge.argv_for(["logs"], [req.project], {"tail": tail}, flags),
                                     events=False)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "stdout")
        sel.register(proc.stderr, selectors.EVENT_READ, "stderr")
        buf = b""
        err = b""
        try:
            while True:
                for key, _ in sel.select(0.2):
                    data = os.read(key.fileobj.fileno(), 65536)
                    if key.data == "stderr":
                        if not data:
                            sel.unregister(key.fileobj)
                        err = (err + data)[-2000:]
                        continue
                    if not data:
                        rc = proc.wait()
                        lines = err.decode("utf-8", "replace").strip().splitlines()
                        # the end: 1000 normal, 1011 with the command's error as the reason
                        conn.close(1000 if rc == 0 else 1011, lines[-1][:120] if lines and rc else "")
                        return
                    buf += data
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        conn.send_text(line.decode("utf-8", "replace"))
                if not conn.poll_client(0):
                    return
        except OSError:
            return
        finally:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except OSError:
                pass
            proc.wait()
            sel.close()

    return Streamed(run)


def register(router):
    router.add("POST", "/api/containers/:id/exec", exec_command, "write", "id",
               body={"command": "the argument list", "root": "run as root"})
    router.add("GET", "/api/containers/:id/logs", container_logs, "read", "id", query={"tail": "lines (100)"})
    router.add("GET", "/api/projects/:id/logs", live_logs, "read", "id", websocket=True,
               query={"tail": "lines (100)", "system": "true: the whole journal, not only the app"})

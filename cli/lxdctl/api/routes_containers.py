"""/api/containers/:id/exec and /logs, and the WebSocket /api/projects/:id/logs."""
import os
import signal

from lxdctl.api import cli_bridge
from lxdctl.api.routes_common import require_project, run_sync
from lxdctl.api.routes_jobs import upgrade, upgrade_check
from lxdctl.api.server import ApiError, Response, Streamed


def _exec_request(req):
    """``(command, flags)`` from ``?command=WORD&command=WORD...&root=true``."""
    command = req.query.get("command") or []
    if not command or not all(c and "\x00" not in c for c in command):
        raise ApiError(400, "command: give the argument list as ?command=WORD&command=WORD..., at least one word")
    root = (req.q("root") or "false").lower()
    if root not in ("true", "false", "1", "0"):
        raise ApiError(400, "root must be true or false")
    require_project(req, req.project)
    if req.principal.kind == "session":
        # a GET that runs commands: a cookie alone must not be enough (CSRF); browsers' WebSockets send Origin
        origin = req.headers.get("Origin") or ""
        same_origin = origin.split("://", 1)[-1] == (req.headers.get("Host") or "")
        if req.headers.get("X-Lxdctl-Request") != "1" and not (origin and same_origin):
            req.handler.deny(req, 403, "a session needs the X-Lxdctl-Request: 1 header (or a same-origin WebSocket)")
    return list(command), (["root"] if root in ("true", "1") else [])


def exec_command(req):
    """Run a command in the project's container: ``?command=ls&command=-l[&root=true]``.

    A plain GET answers ``{"exit_code", "stdout", "stderr"}`` when the command ends.  With a
    WebSocket upgrade it is interactive: binary frames from the client are its stdin (an empty
    one closes stdin); the server sends binary frames whose first byte is 1 (stdout) or 2
    (stderr), then a text frame ``{"exit_code": N}`` and a close.
    """
    command, flags = _exec_request(req)
    argv = cli_bridge.argv_for(["exec"], [req.project] + command, None, flags)
    detail = {"method": "GET", "path": req.path, "words": len(command), "root": bool(flags)}
    if (req.headers.get("Upgrade") or "").lower() != "websocket":
        req.audit("api exec", req.project, detail)
        rc, out, err = run_sync(argv)
        return {"exit_code": rc, "stdout": out, "stderr": err}
    upgrade_check(req)
    req.audit("api exec", req.project, dict(detail, interactive=True))

    def run(req):
        conn = upgrade(req)
        proc, _ = cli_bridge.spawn(argv, events=False, stdin=True, env={"LXDCTL_ACTOR": req.principal.actor})
        import json
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, 1)
        sel.register(proc.stderr, selectors.EVENT_READ, 2)
        try:
            while sel.get_map():
                for key, _ in sel.select(0.05):
                    data = os.read(key.fileobj.fileno(), 65536)
                    if not data:
                        sel.unregister(key.fileobj)
                        continue
                    conn.send_binary(bytes([key.data]) + data)
                messages = conn.receive(0)
                if messages is None:
                    return
                for _opcode, payload in messages:
                    if proc.stdin.closed:
                        continue
                    if not payload:
                        proc.stdin.close()
                        continue
                    try:
                        proc.stdin.write(payload)
                        proc.stdin.flush()
                    except OSError:  # the command stopped reading
                        proc.stdin.close()
            rc = proc.wait()
            conn.send_text(json.dumps({"exit_code": rc}))
            conn.close(1000)
        except OSError:
            return
        finally:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except OSError:
                    pass
            proc.wait()
            sel.close()

    return Streamed(run)


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
    router.add("GET", "/api/containers/:id/exec", exec_command, "write", "id", websocket=True,
               query={"command": "one word of the command (repeat it: ?command=ls&command=-l)",
                      "root": "true: run as root"})
    router.add("GET", "/api/containers/:id/logs", container_logs, "read", "id", query={"tail": "lines (100)"})
    router.add("GET", "/api/projects/:id/logs", live_logs, "read", "id", websocket=True,
               query={"tail": "lines (100)", "system": "true: the whole journal, not only the app"})

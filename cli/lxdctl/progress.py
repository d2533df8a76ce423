"""Turns ansible-runner events into live progress on stderr.

One line per task: a spinner while it runs (when stderr is a terminal), then its outcome
and time.  The first failure's task name and message are kept for the error report, and
``set_stats`` data becomes the run's outputs.
"""
import re
import sys
import threading
import time

_SPINNER = "|/-\\"
# ansible-runner replaces a no_log task's whole result with {"censored": ...}, "changed"
# included; the line the default callback printed for the event still says it.
_CHANGED_LINE = re.compile(r"^(?:\x1b\[[0-9;]*m)*changed: \[", re.MULTILINE)
_OUTCOMES = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
}


class Progress:
    def __init__(self, enabled=True, stream=None):
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.stats = {}
        self.outputs = {}
        self.failed_task = ""
        self.failed_msg = ""
        self._task = None
        self._task_started = 0.0
        self._task_changed = False
        self._task_outcome = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._spinner = None
        if self.tty:
            self._spinner = threading.Thread(target=self._spin, daemon=True)
            self._spinner.start()

    def handle(self, event):
        kind = event.get("event")
        data = event.get("event_data") or {}
        if kind == "playbook_on_task_start":
            self._finish_task()
            with self._lock:
                self._task = data.get("task") or data.get("name") or "task"
                self._task_started = time.monotonic()
                self._task_changed = False
                self._task_outcome = None
        elif kind == "runner_item_on_ok":
            # A loop's final runner_on_ok carries no line of its own under no_log; its items do.
            if _changed(event, data.get("res") or {}):
                self._task_changed = True
        elif kind in _OUTCOMES:
            res = data.get("res") or {}
            outcome = _OUTCOMES[kind]
            if kind == "runner_on_ok" and _changed(event, res):
                self._task_changed = True
            if outcome in ("failed", "unreachable") and not data.get("ignore_errors"):
                self._task_outcome = "failed"
                if not self.failed_task:
                    self.failed_task = data.get("task") or self._task or ""
                    self.failed_msg = _failure_message(res)
            elif self._task_outcome != "failed":
                self._task_outcome = "skipped" if outcome == "skipped" and self._task_outcome is None else "ok"
        elif kind == "playbook_on_stats":
            self._finish_task()
            self.stats = {key: data.get(key) or {} for key in ("ok", "changed", "failures", "skipped", "dark")}
            artifact = data.get("artifact_data") or {}
            self.outputs = artifact if isinstance(artifact, dict) else {}
        return True

    def _finish_task(self):
        with self._lock:
            if self._task is None:
                return
            name, self._task = self._task, None
            elapsed = time.monotonic() - self._task_started
            outcome = self._task_outcome or "ok"
            if outcome == "ok" and self._task_changed:
                outcome = "changed"
        if self.enabled and outcome != "skipped":
            mark = {"ok": "ok     ", "changed": "changed", "failed": "FAILED "}.get(outcome, outcome)
            self._write("  %s %s (%.1fs)\n" % (mark, name, elapsed))

    def _write(self, text):
        if self.tty:
            text = "\r\033[K" + text
        self.stream.write(text)
        self.stream.flush()

    def _spin(self):
        tick = 0
        while not self._stop.wait(0.2):
            with self._lock:
                if self._task is None:
                    continue
                elapsed = time.monotonic() - self._task_started
                if elapsed < 1.0:
                    continue
                line = "\r\033[K  %s %s (%.0fs)" % (_SPINNER[tick % 4], self._task, elapsed)
            self.stream.write(line)
            self.stream.flush()
            tick += 1

    def close(self):
        self._finish_task()
        self._stop.set()
        if self._spinner is not None:
            self._spinner.join(timeout=1)


def _changed(event, res):
    if res.get("changed"):
        return True
    return bool(res.get("censored")) and bool(_CHANGED_LINE.search(event.get("stdout") or ""))


def _failure_message(res):
    if res.get("censored"):
        return "the task failed; its output is hidden because it handles secrets (no_log)"
    msg = res.get("msg") or res.get("stderr") or res.get("reason") or ""
    # a loop's own message ("One or more items failed") says nothing: the failed item's does
    if (not msg or msg == "One or more items failed") and res.get("results"):
        for item in res["results"]:
            if item.get("failed"):
                return _failure_message(item)
    if isinstance(msg, (list, dict)):
        msg = str(msg)
    return str(msg).strip()

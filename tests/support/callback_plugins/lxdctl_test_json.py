# The test driver's stdout callback: every task result of the run, as one JSON document.
# (ansible-core 2.19 moved its json callback to ansible.posix, which is not installed here.)
from __future__ import annotations
import json
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = """
name: lxdctl_test_json
type: stdout
short_description: Task results as one JSON document (tests only)
description: Prints plays, tasks and per-host results as JSON when the run ends.
"""

class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "lxdctl_test_json"

    def __init__(self, display=None):
        super().__init__(display)
        self.results = []

    def v2_playbook_on_play_start(self, play):
        self.results.append({"play": {"name": play.get_name()}, "tasks": []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.results[-1]["tasks"].append({"task": {"name": task.get_name()}, "hosts": {}})

    def _record(self, result, **extra):
        data = dict(result._result)
        data.update(extra)
        self.results[-1]["tasks"][-1]["hosts"][result._host.name] = data

    def v2_runner_on_ok(self, result, **kw):
        self._record(result)

    def v2_runner_on_failed(self, result, **kw):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result, **kw):
        self._record(result, unreachable=True, failed=True)

    def v2_runner_on_skipped(self, result, **kw):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        self._display.display(json.dumps({"plays": self.results}, default=str))

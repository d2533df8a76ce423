"""``python -m lxdctl.api.clirun ARGV...``: run one lxdctl command locally for the server.

Same code, same output as the CLI.  When ``LXDCTL_EVENTS_FD`` is set, every ansible-runner
event of the command's playbook runs is also written there as one JSON line (a trimmed copy:
event name, task, host, changed/failed; never task results, which may hold secrets).
"""
import json
import os
import sys


def trim(event):
    data = event.get("event_data") or {}
    out = {"type": "runner", "event": event.get("event"), "counter": event.get("counter")}
    for key in ("task", "host", "play"):
        if data.get(key):
            out[key] = data[key]
    res = data.get("res") if isinstance(data.get("res"), dict) else {}
    if event.get("event") in ("runner_on_ok", "runner_on_failed", "runner_on_unreachable"):
        out["changed"] = bool(res.get("changed"))
        out["failed"] = event.get("event") != "runner_on_ok"
    if event.get("event") == "playbook_on_stats":
        out["stats"] = dict((k, data.get(k) or {}) for k in ("ok", "changed", "failures", "skipped", "dark"))
    return out


def install_event_tap(fd):
    import lxdctl.execute
    import lxdctl.runner

    stream = os.fdopen(fd, "w", buffering=1)
    original = lxdctl.runner.run_playbook

    def run_playbook(playbook, extravars, check=False, verbosity=0, progress=None, envvars=None):
        from lxdctl.progress import Progress

        progress = progress or Progress(enabled=verbosity == 0)
        handle = progress.handle

        def tap(event):
            try:
                stream.write(json.dumps(trim(event), default=str) + "\n")
            except (OSError, ValueError):
                pass
            return handle(event)

        progress.handle = tap
        return original(playbook, extravars, check=check, verbosity=verbosity, progress=progress, envvars=envvars)

    lxdctl.runner.run_playbook = run_playbook
    lxdctl.execute.run_playbook = run_playbook


def main(argv):
    fd = os.environ.pop("LXDCTL_EVENTS_FD", None)
    if fd:
        install_event_tap(int(fd))
    os.environ["LXDCTL_LOCAL"] = "1"
    from lxdctl.main import cli

    cli.main(args=argv, prog_name="lxdctl")


if __name__ == "__main__":
    main(sys.argv[1:])

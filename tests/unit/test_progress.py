"""Progress lines say "changed" for changed tasks, also when the task is no_log.

ansible-runner censors a no_log result whole ("changed" too); the events below are shaped
as ansible-runner 2.4 sends them, and the last test runs a real playbook through the runner.
"""
import io
import textwrap

from lxdctl.progress import Progress
from lxdctl.runner import run_playbook

CENSORED = "the output has been hidden due to the fact that 'no_log: true' was specified for this result"


def _lines(events):
    stream = io.StringIO()
    progress = Progress(enabled=True, stream=stream)
    for event in events:
        progress.handle(event)
    progress.close()
    return stream.getvalue().splitlines()


def _task(name, *outcomes):
    yield {"event": "playbook_on_task_start", "event_data": {"task": name}}
    for kind, stdout, res in outcomes:
        yield {"event": kind, "stdout": stdout, "event_data": {"task": name, "res": res}}


def test_censored_changed_task_shows_changed():
    lines = _lines(_task("Set password", ("runner_on_ok", "changed: [localhost]", {"censored": CENSORED})))
    assert lines[0].split()[:3] == ["changed", "Set", "password"]


def test_censored_unchanged_task_shows_ok():
    lines = _lines(_task("Read secret", ("runner_on_ok", "ok: [localhost]", {"censored": CENSORED})))
    assert lines[0].split()[:3] == ["ok", "Read", "secret"]


def test_censored_loop_is_changed_when_an_item_changed():
    lines = _lines(_task(
        "Users",
        ("runner_item_on_ok", "ok: [localhost] => (item=(censored due to no_log))", {"censored": CENSORED}),
        ("runner_item_on_ok", "changed: [localhost] => (item=(censored due to no_log))", {"censored": CENSORED}),
        ("runner_on_ok", "", {"censored": CENSORED}),
    ))
    assert lines[0].split()[:2] == ["changed", "Users"]


def test_uncensored_result_decides_not_the_printed_line():
    # Only a censored result is read from the printed line; a task's own output that
    # happens to start with "changed: [" does not make it changed.
    lines = _lines(_task("Echo", ("runner_on_ok", "changed: [localhost]", {"changed": False})))
    assert lines[0].split()[:2] == ["ok", "Echo"]
    lines = _lines(_task("Write", ("runner_on_ok", "", {"changed": True})))
    assert lines[0].split()[:2] == ["changed", "Write"]


def test_real_run_reports_no_log_changes(tmp_path):
    playbook = tmp_path / "no_log.yml"
    playbook.write_text(textwrap.dedent("""\
        - hosts: localhost
          gather_facts: false
          tasks:
            - name: Changed secret task
              ansible.builtin.command: "true"
              changed_when: true
              no_log: true
            - name: Unchanged secret task
              ansible.builtin.command: "true"
              changed_when: false
              no_log: true
            - name: Secret loop
              ansible.builtin.command: "echo {{ item }}"
              changed_when: item == 2
              loop: [1, 2]
              no_log: true
        """))
    stream = io.StringIO()
    # An absolute path stands for itself where the runner joins it to the playbooks dir.
    result = run_playbook(str(playbook), {}, progress=Progress(enabled=True, stream=stream))
    assert result.ok, stream.getvalue()
    marks = {line.split(None, 1)[1].rsplit(" (", 1)[0]: line.split()[0] for line in stream.getvalue().splitlines()}
    assert marks == {"Changed secret task": "changed", "Unchanged secret task": "ok", "Secret loop": "changed"}
    assert result.changed == 2

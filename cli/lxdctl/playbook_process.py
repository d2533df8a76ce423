"""``lxdctl-ansible-playbook``: Ansible's own ansible-playbook, ended without the interpreter's teardown.

When a play is over, ansible-playbook has reported its result, its exit handlers have run
(Mitogen's shutdown, Ansible's temporary files, logging) and its output is flushed, yet the
interpreter still frees its whole heap, module by module, before the process ends: 0.3 s on a
quiet machine, 0.7 s on a busy one, at the end of every lxdctl command.  The runner starts this
entry point instead: it runs ansible-playbook's own ``cli_executor`` with the same arguments,
runs the exit handlers and flushes, then leaves with ``os._exit`` and ansible-playbook's exit
code.  ``ansible-playbook`` and AWX run the plain command; the play is the same.
"""
import atexit
import os
import sys

NAME = "lxdctl-ansible-playbook"


def exit_status(code):
    """The exit status ``sys.exit(code)`` gives: a message is printed and means 1, as in Python."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write("%s\n" % (code,))
    return 1


def main():
    from ansible.cli.playbook import PlaybookCLI  # imported here: executable() is called where Ansible is not loaded

    try:
        PlaybookCLI.cli_executor(sys.argv)
        status = 0
    except SystemExit as exc:
        status = exit_status(exc.code)
    atexit._run_exitfuncs()  # what a normal exit would run; only the heap teardown is skipped
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # the reader went away: nothing left to deliver
            pass
    os._exit(status)


def executable():
    """This entry point's script next to the running interpreter, or None where it is not installed
    (then the runner starts plain ``ansible-playbook``)."""
    path = os.path.join(os.path.dirname(sys.executable), NAME)
    return path if os.access(path, os.X_OK) else None

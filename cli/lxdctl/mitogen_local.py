"""Mitogen for a play whose only host is this machine, running the controller's own Python.

Mitogen starts one target interpreter per run and, by default, sends it every ``ansible`` and
``ansible_mitogen`` module it imports: about 60 modules, 250 kB of source that the controller
minifies and the target compiles again on every run (about half a second on this CPU), because
on a remote host the installed Ansible may differ from the controller's.  The CLI's target is
``localhost`` running ``sys.executable`` (runner.localhost_inventory), so it has the very same
packages on disk, with their bytecode cached: it imports them itself.  Only the collection
(``ansible_collections``) still comes from the controller, since it is not on the target's
``sys.path``.

With ``LXDCTL_MITOGEN_TARGET=fork`` that target is no new interpreter but a fork of Mitogen's
multiplexer, which runs the same interpreter with Ansible already imported
(``_connect_local_by_fork``).

The strategy plugins in ``lxdctl/strategy_plugins`` apply this before Mitogen starts its
multiplexer; ``ansible-playbook`` and AWX never load them.
"""
import os
import sys

import ansible_mitogen.connection
import ansible_mitogen.process

# Served to the target even though it has them: Mitogen's own default, kept for the collection.
SERVED_BY_THE_CONTROLLER = ("ansible_collections",)
IMPORTED_BY_THE_TARGET = ("ansible", "ansible_mitogen")

_setup_responder = ansible_mitogen.process._setup_responder


def _serve_only_the_collection(responder):
    _setup_responder(responder)
    # a prefix left out of a non-empty override list is imported by the target from its own disk
    responder.policy.overrides.difference_update(IMPORTED_BY_THE_TARGET)
    missing = set(SERVED_BY_THE_CONTROLLER) - responder.policy.overrides
    if missing:  # a Mitogen release that changed its policy: better slow than broken
        raise RuntimeError("Mitogen no longer overrides %s" % ", ".join(sorted(missing)))


_connect_local = ansible_mitogen.connection.CONNECTION_METHOD["local"]


def _same_interpreter(python_path):
    """Whether the target's interpreter (a path, or an argv list) is the one running this process."""
    argv = python_path if isinstance(python_path, (list, tuple)) else [python_path]
    return len(argv) == 1 and bool(argv[0]) and os.path.realpath(argv[0]) == os.path.realpath(sys.executable)


def _connect_local_by_fork(spec):
    """The local target as a fork of Mitogen's multiplexer instead of a new interpreter.

    A new interpreter has to start, receive Mitogen's bootstrap and import Ansible's module
    support before the first task runs: 0.4 s on a quiet machine and 1-2 s on a busy one, in
    every command.  The multiplexer (forked from ansible-playbook) already runs this very
    interpreter with those modules imported, and Mitogen's own ``fork`` method makes a context
    of it in milliseconds; ansible_mitogen forks per task from a target anyway.  A play that
    names another interpreter for localhost still gets a new one.
    """
    if not _same_interpreter(spec.python_path()):
        return _connect_local(spec)
    return {"method": "fork", "kwargs": {}}


def target_by_fork():
    """``LXDCTL_MITOGEN_TARGET=fork`` forks the multiplexer; the default still starts a new
    interpreter, as Mitogen does, until the whole suite has run on the fork."""
    return os.environ.get("LXDCTL_MITOGEN_TARGET", "spawn") == "fork"


def install():
    """Make every multiplexer started from now on serve only the collection to the target, and
    make the local target a fork of the multiplexer when ``LXDCTL_MITOGEN_TARGET=fork``."""
    ansible_mitogen.process._setup_responder = _serve_only_the_collection
    if target_by_fork():
        ansible_mitogen.connection.CONNECTION_METHOD["local"] = _connect_local_by_fork

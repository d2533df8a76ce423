"""Mitogen for a play whose only host is this machine, running the controller's own Python.

Mitogen starts one target interpreter per run and, by default, sends it every ``ansible`` and
``ansible_mitogen`` module it imports: about 60 modules, 250 kB of source that the controller
minifies and the target compiles again on every run (about half a second on this CPU), because
on a remote host the installed Ansible may differ from the controller's.  The CLI's target is
``localhost`` running ``sys.executable`` (runner.localhost_inventory), so it has the very same
packages on disk, with their bytecode cached: it imports them itself.  Only the collection
(``ansible_collections``) still comes from the controller, since it is not on the target's
``sys.path``.

The strategy plugins in ``lxdctl/strategy_plugins`` apply this before Mitogen starts its
multiplexer; ``ansible-playbook`` and AWX never load them.
"""
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


def install():
    """Make every multiplexer started from now on serve only the collection to the target."""
    ansible_mitogen.process._setup_responder = _serve_only_the_collection

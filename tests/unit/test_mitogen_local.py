"""lxdctl.mitogen_local: which modules Mitogen's controller still serves to the target."""
import sys
import types

import ansible_mitogen.connection
import ansible_mitogen.process
import mitogen.core
import pytest

from lxdctl import mitogen_local


def _responder():
    return types.SimpleNamespace(policy=mitogen.core.ImportPolicy())


def _mitogen_default(responder):
    # what ansible_mitogen.process._setup_responder does to the policy
    responder.policy.overrides.update({"mitogen", "ansible", "ansible_collections", "ansible_mitogen"})


def test_only_the_collection_is_served(monkeypatch):
    monkeypatch.setattr(mitogen_local, "_setup_responder", _mitogen_default)
    responder = _responder()
    mitogen_local._serve_only_the_collection(responder)
    policy = responder.policy
    assert policy.overriden("ansible_collections.lxdctl.platform.plugins.module_utils._lxd")
    assert not policy.overriden("ansible.module_utils.basic")
    assert not policy.overriden("ansible_mitogen.target")
    # the responder refuses what the target must import itself
    assert policy.denied("ansible.module_utils.basic")
    assert not policy.denied("ansible_collections.lxdctl.platform.plugins.module_utils._lxd")


def test_a_mitogen_that_no_longer_serves_the_collection_is_refused(monkeypatch):
    monkeypatch.setattr(mitogen_local, "_setup_responder", lambda responder: responder.policy.overrides.add("ansible"))
    with pytest.raises(RuntimeError, match="ansible_collections"):
        mitogen_local._serve_only_the_collection(_responder())


def test_mitogens_own_responder_after_the_change():
    import mitogen.master

    router = mitogen.master.Router()
    try:
        mitogen_local._serve_only_the_collection(router.responder)
        policy = router.responder.policy
        assert policy.overriden("ansible_collections.lxdctl.platform.plugins.modules.lxdctl_state")
        assert policy.denied("ansible.module_utils.basic") and policy.denied("ansible_mitogen.target")
        assert not policy.denied("mitogen.parent")  # Mitogen's own core still comes from the controller
    finally:
        router.broker.shutdown()
        router.broker.join()


class _Spec:
    def __init__(self, python_path):
        self._python_path = python_path

    def python_path(self):
        return self._python_path


@pytest.mark.parametrize("python_path", [sys.executable, [sys.executable]])
def test_the_local_target_is_a_fork_when_it_runs_this_interpreter(python_path):
    assert mitogen_local._connect_local_by_fork(_Spec(python_path)) == {"method": "fork", "kwargs": {}}


@pytest.mark.parametrize("python_path", ["/nonexistent/python3", ["/usr/bin/env", "python3"], ""])
def test_another_interpreter_gets_mitogens_own_local_connection(python_path):
    spec = mitogen_local._connect_local_by_fork(_Spec(python_path))
    assert spec["method"] == "local" and spec["kwargs"]["python_path"] == python_path


def test_install_forks_the_target_only_when_told_to(monkeypatch):
    methods = dict(ansible_mitogen.connection.CONNECTION_METHOD)
    monkeypatch.setattr(ansible_mitogen.connection, "CONNECTION_METHOD", methods)
    monkeypatch.setattr(ansible_mitogen.process, "_setup_responder", ansible_mitogen.process._setup_responder)
    monkeypatch.delenv("LXDCTL_MITOGEN_TARGET", raising=False)
    mitogen_local.install()
    assert methods["local"] is mitogen_local._connect_local
    monkeypatch.setenv("LXDCTL_MITOGEN_TARGET", "fork")
    mitogen_local.install()
    assert methods["local"] is mitogen_local._connect_local_by_fork

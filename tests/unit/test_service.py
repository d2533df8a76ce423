"""module_utils/_service.py: how every module runs its service, and the shared tenant options.

No services: a fake AnsibleModule records fail_json/exit_json, the clients are fakes.
"""
import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _service
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.modules import (
    memcached_instance,
    mysql_tenant,
    postgres_tenant,
    redis_acl_user,
)


class Exited(Exception):
    pass


class FakeModule:
    def __init__(self, params):
        self.params = params
        self.check_mode = False
        self.failed = None
        self.exited = None

    def fail_json(self, **kwargs):
        self.failed = kwargs
        raise Exited()

    def exit_json(self, **kwargs):
        self.exited = kwargs
        raise Exited()


class Client:
    def __init__(self, params):
        self.closed = False
        CLIENTS.append(self)

    def close(self):
        self.closed = True


CLIENTS = []


class Works(_service.Service):
    def run(self):
        return {"changed": True, "client": self.client is not None}


class Breaks(_service.Service):
    def run(self):
        raise LxdctlError("Failed to get role p_x: gone")


def _run(make_client, make_service, validate=None, params=None):
    module = FakeModule(params or {})
    with pytest.raises(Exited):
        _service.run_service(module, make_client, make_service, validate=validate)
    return module


def test_result_is_exited_and_client_closed():
    del CLIENTS[:]
    module = _run(Client, Works)
    assert module.exited == {"changed": True, "client": True} and CLIENTS[0].closed


def test_error_becomes_fail_json_and_client_still_closed():
    del CLIENTS[:]
    module = _run(Client, Breaks)
    assert module.failed == {"msg": "Failed to get role p_x: gone"} and module.exited is None
    assert CLIENTS[0].closed


def test_validation_runs_before_anything_connects():
    del CLIENTS[:]

    def refuse(params):
        raise LxdctlError("password: must not be empty")

    module = _run(Client, Works, validate=refuse)
    assert module.failed == {"msg": "password: must not be empty"} and CLIENTS == []


def test_clients_without_close_and_modules_without_client():
    # pylxd's client has no close(); memcached_instance has no client at all.
    assert _run(lambda params: object(), Works).exited == {"changed": True, "client": True}
    assert _run(None, Works).exited == {"changed": True, "client": False}


@pytest.mark.parametrize("module", [postgres_tenant, mysql_tenant, redis_acl_user])
def test_tenant_modules_share_the_password_options(module):
    spec = module.argument_spec()
    for key, option in _service.TENANT_ARGSPEC.items():
        assert spec[key] == option
    assert spec["password"]["no_log"] is True


@pytest.mark.parametrize("password, ok", [(None, True), ("s3cret", True), ("", False)])
def test_validate_tenant(password, ok):
    if ok:
        _service.validate_tenant({"password": password})
    else:
        with pytest.raises(LxdctlError, match="^password: must not be empty$"):
            _service.validate_tenant({"password": password})


def test_memcached_instance_runs_through_run_service():
    module = FakeModule({"name": "rough-x", "memory_mb": 0, "listen": None, "port": None, "state": "present"})
    with pytest.raises(Exited):
        _service.run_service(module, None, memcached_instance.InstanceService, validate=memcached_instance.validate)
    assert module.failed == {"msg": "memory_mb: must be from 1 to 65536"}

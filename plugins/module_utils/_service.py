# -*- coding: utf-8 -*-
"""How a module runs its service class against a backend client (the kubernetes.core shape).

A client that can be closed is always closed, and ``LxdctlError`` — the one error type —
becomes ``fail_json`` with its readable message.  The tenant modules (``postgres_tenant``,
``mysql_tenant``, ``redis_acl_user``) also share their password options and rule here.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError


class Service(object):
    """A module's work against one backend client; ``run()`` returns the module's result."""

    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params


class SqlTenantService(Service):
    """What ``postgres_tenant`` and ``mysql_tenant`` share once their plans are made."""

    def finish(self, statements, changed, before, after, password_set, existed, **fields):
        """Execute ``statements`` (only list them, in check mode) and build the result;
        ``existed`` tells whether the owner had a password before this run."""
        queries = self.client.execute(statements, check_mode=self.module.check_mode) if statements else []
        if password_set:
            # The diff says that the password changes, never what it is.
            after = dict(after, password="(changed)")
            before = dict(before, password="(set)" if existed else None)
        return dict(
            fields,
            changed=changed,
            host=self.client.tenant_host,
            port=self.client.port,
            password_set=password_set,
            queries=queries,
            diff=dict(before=before, after=after),
        )


def run_service(module, make_client, make_service, validate=None):
    """``validate(params)`` checks the input before anything connects (it raises
    ``LxdctlError``); ``make_client(params)`` opens the backend (``None``: a module without
    one); ``make_service(module, client).run()`` does the work."""
    client = None
    try:
        if validate is not None:
            validate(module.params)
        if make_client is not None:
            client = make_client(module.params)
        result = make_service(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    finally:
        # pylxd's client has no close(); the database and Redis clients hold a connection.
        close = getattr(client, "close", None)
        if close is not None:
            close()
    module.exit_json(**result)


# The options every tenant module has besides its own and its backend's connection options.
TENANT_ARGSPEC = dict(
    password=dict(type="str", no_log=True),
    rotate_password=dict(type="bool", default=False, no_log=False),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)

TENANT_REQUIRED_IF = [("state", "present", ["password"])]


def tenant_argument_spec(own, connection_argspec):
    spec = dict(own)
    spec.update(TENANT_ARGSPEC)
    spec.update(connection_argspec)
    return spec


def validate_tenant(params):
    # required_if accepts "" as given; an empty password would lock the tenant out or, for
    # Redis, not be a password at all.
    if params["password"] is not None and not params["password"]:
        raise LxdctlError("password: must not be empty")

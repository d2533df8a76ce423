# -*- coding: utf-8 -*-
"""How a module runs its service class against a backend client (the kubernetes.core shape).

The client is always closed, and ``LxdctlError`` — the one error type — becomes
``fail_json`` with its readable message.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError


def run_service(module, make_client, make_service):
    """``make_client(params)`` opens the backend; ``make_service(module, client).run()`` does the work."""
    client = None
    try:
        client = make_client(module.params)
        result = make_service(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    finally:
        if client is not None:
            client.close()
    module.exit_json(**result)

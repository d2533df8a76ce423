# -*- coding: utf-8 -*-
"""The service the LXD host-object modules share (``lxd_storage_pool``, ``lxd_network``,
``lxd_profile``).

The three objects have one lifecycle in the LXD API (see ``_lxd.get_host_object``), so
removal, the config/description merge and the check-mode-guarded write live here once;
each module keeps only what is its own: its ``view`` of the object, how it builds a new
one, and the rules of its kind.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._service import Service
from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd


class HostObjectService(Service):
    """``kind`` is a key of ``_lxd.HOST_OBJECT_KINDS``; ``result_key`` names the object in
    the module's result; ``view(obj)`` is the comparable dict of an API object (``{}`` for
    none); ``present(name, current)`` returns the result for ``state=present``."""

    kind = None
    result_key = None

    def view(self, obj):
        raise NotImplementedError

    def present(self, name, current):
        raise NotImplementedError

    def run(self):
        name = self.params["name"]
        obj = _lxd.get_host_object(self.client, self.kind, name)
        current = self.view(obj)
        if self.params["state"] == "absent":
            return self.absent(name, obj, current)
        return self.present(name, current)

    def absent(self, name, obj, current):
        result = {"changed": bool(current), self.result_key: {}, "diff": dict(before=current, after={})}
        if current:
            users = _lxd.used_by(obj)
            if users:
                raise LxdctlError("Cannot delete %s %s: it is used by %s" % (self.kind, name, ", ".join(users)))
            if not self.module.check_mode:
                _lxd.delete_host_object(self.client, self.kind, name)
        return result

    def merge(self, current, wanted_config):
        """``(patch, after)``: the PATCH body for the config keys and the description
        parameter that differ (``{}`` when none do), and the object as it will be."""
        changes = _lxd.config_changes(current["config"], wanted_config)
        patch = {"config": changes} if changes else {}
        description = self.params["description"]
        if description is not None and description != current["description"]:
            patch["description"] = description
        after = dict(current, config=dict(current["config"], **changes))
        if "description" in patch:
            after["description"] = description
        return patch, after

    def patch(self, name, current, wanted_config):
        patch, after = self.merge(current, wanted_config)
        return self.write(name, current, after, bool(patch),
                          lambda: _lxd.patch_host_object(self.client, self.kind, name, patch))

    def create(self, name, body, after):
        return self.write(name, {}, after, True, lambda: _lxd.create_host_object(self.client, self.kind, body))

    def write(self, name, before, after, changed, apply):
        """The result of a present object; ``apply()`` makes the change unless in check
        mode, and the result then holds the object as LXD reports it."""
        result = {"changed": changed, self.result_key: after, "diff": dict(before=before, after=after)}
        if changed and not self.module.check_mode:
            apply()
            result[self.result_key] = self.view(_lxd.get_host_object(self.client, self.kind, name))
        return result

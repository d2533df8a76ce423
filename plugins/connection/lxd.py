# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: lxd
short_description: Run tasks in LXD instances through the LXD API (pylxd)
description:
  - Runs commands in an LXD instance and copies files in and out of it over the LXD REST API
    (pylxd), on the local unix socket or a remote LXD over HTTPS with a client certificate.
    No SSH and no C(lxc) binary are needed.
  - Commands run as C(/bin/sh -c <command>) inside the instance, as root. Become is not supported.
  - Commands use LXD's recorded-output exec (plain API requests, no websockets), which is
    reliable over HTTPS; with pipelining, the module's input is pushed as a 0600 file and
    redirected in.
author: lxdctl engineers
version_added: "0.1.0"
options:
  remote_addr:
    description: The instance to run in.
    type: str
    default: inventory_hostname
    vars:
      - name: inventory_hostname
      - name: ansible_host
      - name: ansible_lxd_host
  lxd_url:
    description:
      - C(unix:///var/lib/lxd/unix.socket) (the default) or C(https://host:8443).
      - Falls back to the platform configuration C(/etc/lxdctl/platform.json).
    type: str
    env:
      - name: LXDCTL_LXD_URL
    vars:
      - name: lxdctl_lxd_url
      - name: ansible_lxd_url
  lxd_client_cert:
    description: Client certificate (PEM) for an https:// O(lxd_url).
    type: path
    env:
      - name: LXDCTL_LXD_CLIENT_CERT
    vars:
      - name: lxdctl_lxd_client_cert
  lxd_client_key:
    description: Private key (PEM) of O(lxd_client_cert).
    type: path
    env:
      - name: LXDCTL_LXD_CLIENT_KEY
    vars:
      - name: lxdctl_lxd_client_key
  lxd_verify:
    description: Verify the remote LXD's TLS certificate; V(true), V(false) or a CA bundle path.
    type: str
    env:
      - name: LXDCTL_LXD_VERIFY
    vars:
      - name: lxdctl_lxd_verify
extends_documentation_fragment:
  - connection_pipelining
"""

EXAMPLES = r"""
# inventory: myapp ansible_connection=lxdctl.platform.lxd ansible_host=lxdctl-myapp ansible_python_interpreter=/usr/bin/python3
- hosts: myapp
  gather_facts: false
  tasks:
    - ansible.builtin.command: uptime
"""

import os

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

display = Display()


class Connection(ConnectionBase):
    """Run commands and move files over the LXD API."""

    transport = "lxdctl.platform.lxd"
    has_pipelining = True
    default_user = "root"

    def __init__(self, *args, **kwargs):
        super(Connection, self).__init__(*args, **kwargs)
        self._client = None

    def _instance(self):
        return self.get_option("remote_addr")

    def _connect(self):
        if self._connected and self._client is not None:
            return self
        params = dict(
            lxd_url=self.get_option("lxd_url"),
            lxd_client_cert=self.get_option("lxd_client_cert"),
            lxd_client_key=self.get_option("lxd_client_key"),
            lxd_verify=self.get_option("lxd_verify"),
        )
        try:
            self._client = _lxd.connect(params)
            if _lxd.get_instance(self._client, self._instance()) is None:
                raise LxdctlError("Instance %s does not exist" % self._instance())
        except LxdctlError as err:
            raise AnsibleConnectionFailure(err.msg)
        display.vvv("ESTABLISH LXD (pylxd) CONNECTION TO %s" % self._instance(), host=self._instance())
        self._connected = True
        return self

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super(Connection, self).exec_command(cmd, in_data=in_data, sudoable=sudoable)
        self._connect()
        display.vvv("EXEC %s" % cmd, host=self._instance())
        argv = ["/bin/sh", "-c", to_text(cmd, errors="surrogate_or_strict")]
        try:
            return _lxd.instance_exec(self._client, self._instance(), argv,
                                      stdin=to_bytes(in_data) if in_data is not None else None)
        except LxdctlError as err:
            raise AnsibleConnectionFailure(err.msg)

    def put_file(self, in_path, out_path):
        super(Connection, self).put_file(in_path, out_path)
        self._connect()
        display.vvv("PUT %s TO %s" % (in_path, out_path), host=self._instance())
        if not os.path.isfile(to_bytes(in_path, errors="surrogate_or_strict")):
            raise AnsibleFileNotFound("input path is not a file: %s" % in_path)
        with open(to_bytes(in_path, errors="surrogate_or_strict"), "rb") as handle:
            data = handle.read()
        mode = os.stat(to_bytes(in_path, errors="surrogate_or_strict")).st_mode & 0o7777
        try:
            _lxd.write_file(self._client, self._instance(), to_text(out_path), data, mode=mode)
        except LxdctlError as err:
            raise AnsibleError(err.msg)

    def fetch_file(self, in_path, out_path):
        super(Connection, self).fetch_file(in_path, out_path)
        self._connect()
        display.vvv("FETCH %s TO %s" % (in_path, out_path), host=self._instance())
        try:
            found = _lxd.read_file(self._client, self._instance(), to_text(in_path))
        except LxdctlError as err:
            raise AnsibleError(err.msg)
        if found is None or found["type"] != "file":
            raise AnsibleFileNotFound("%s is not a file in instance %s" % (in_path, self._instance()))
        with open(to_bytes(out_path, errors="surrogate_or_strict"), "wb") as handle:
            handle.write(found["content"])

    def close(self):
        super(Connection, self).close()
        self._client = None
        self._connected = False

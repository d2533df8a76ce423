#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: lxd_instance
short_description: Manage LXD instances (system containers) and their power state
description:
  - Creates, configures, starts, stops, restarts and deletes an LXD instance through pylxd,
    against the local unix socket or a remote LXD over HTTPS with a client certificate.
  - O(config), O(devices) and O(profiles) are managed B(exactly) when given, so keys that
    are not listed are removed. Keys that LXD maintains itself (C(volatile.*) and C(image.*))
    are never compared or written.
  - O(image), O(image_server) and O(image_protocol) are only used when the instance is created;
    an existing instance is never rebuilt.
  - B(Network isolation.) Project containers share one bridge. Give their NIC
    C(security.port_isolation=true) (in the profile or in O(devices)), and the bridge then drops
    all traffic between two isolated ports, while each container still reaches the host's
    services on the bridge address. The host must also drop forwarding from the bridge back
    into itself, or a container can route one-way packets to a peer via the host (see
    ARCHITECTURE.md, "Network isolation"). See the EXAMPLES.
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.lxd
  - lxdctl.platform.attributes.ALL
options:
  name:
    description:
      - The instance name, a DNS label of 1-63 lowercase letters, digits and single inner
        hyphens, starting with a letter.
    type: str
    required: true
  state:
    description:
      - V(present) makes sure the instance exists with the given settings, leaving its power state alone
        (a new instance stays stopped).
      - V(started) and V(stopped) also set the power state; V(restarted) always restarts
        (or starts) it and always reports a change. V(absent) stops and deletes it.
    type: str
    choices: [present, started, stopped, restarted, absent]
    default: started
  type:
    description: The instance type, used on creation only.
    type: str
    choices: [container, virtual-machine]
    default: container
  image:
    description:
      - The image alias (or fingerprint) to create the instance from. A local alias by default;
        with O(image_server), an alias on that image server.
      - Required when the instance does not exist yet and O(state) is not V(absent).
    type: str
  image_server:
    description:
      - An image server URL (C(https://...)) to pull O(image) from, for example
        C(https://images.linuxcontainers.org).
    type: str
  image_protocol:
    description: The protocol of O(image_server).
    type: str
    choices: [simplestreams, lxd]
    default: simplestreams
  pool:
    description:
      - The storage pool for the root disk. Adds a C(root) disk device (path C(/)) on that pool.
      - Moving an existing instance to another pool is not supported (LXD refuses it).
    type: str
  profiles:
    description:
      - The profiles, in order. Omitted means LXD's C(default) profile on creation and no
        change afterwards.
    type: list
    elements: str
  config:
    description:
      - Instance config. Keys must start with C(limits.), C(security.), C(user.), C(boot.),
        C(environment.), C(snapshots.), C(cloud-init.) or C(migration.); C(raw.*), C(volatile.*)
        and C(image.*) are refused.
      - Values are sent as strings; booleans become V(true)/V(false).
      - Labels are C(user.*) keys, e.g. C(user.lxdctl.project).
      - Omitted means no change to an existing instance.
    type: dict
  devices:
    description:
      - Devices by name, each a dict with at least C(type). Values are sent as strings.
      - Omitted means no change to an existing instance.
    type: dict
  wait:
    description:
      - After starting, wait until the instance runs and has an IPv4 address.
    type: bool
    default: true
  ephemeral:
    description:
      - Create the instance as ephemeral, so LXD deletes it when it stops (a pipeline run's
        container, so nothing of it outlives the run, even a run that was killed).
      - Only applied when the instance is created.
    type: bool
    default: false
  background_start:
    description:
      - With O(state=started), ask LXD to start the instance and return without waiting for the
        start, so the caller can do other work while the instance boots. O(wait) is then ignored.
      - Every run of this module first waits for any LXD task still running on the instance, so a
        later run with O(wait=true) collects the start, or starts the instance again if that
        start failed.
    type: bool
    default: false
  timeout:
    description: Seconds to wait for the address, and for a graceful stop.
    type: int
    default: 60
  force_stop:
    description: Stop without a graceful shutdown (V(absent) always forces).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: A project container on the platform profile, isolated from other projects
  lxdctl.platform.lxd_instance:
    name: lxdctl-myapp
    image: lxdctl-base
    pool: lxdctl
    profiles: [lxdctl]
    config:
      limits.memory: 512MiB
      limits.cpu: "1"
      user.lxdctl.project: myapp
      user.lxdctl.runtime: python
    devices:
      eth0:
        type: nic
        network: lxdctlbr0
        name: eth0
        security.port_isolation: "true"
    state: started
  register: inst

- name: Show its address
  ansible.builtin.debug:
    msg: "{{ inst.ipv4 }}"

- name: From a remote image server, on a remote LXD
  lxdctl.platform.lxd_instance:
    name: web1
    image: debian/12
    image_server: https://images.linuxcontainers.org
    image_protocol: simplestreams
    lxd_url: https://lxd.example.com:8443
    lxd_client_cert: /etc/lxdctl/lxd-client.crt
    lxd_client_key: /etc/lxdctl/lxd-client.key

- name: Remove it
  lxdctl.platform.lxd_instance:
    name: lxdctl-myapp
    state: absent
"""

RETURN = r"""
instance:
  description: The instance after the task (predicted in check mode); null when absent.
  returned: always
  type: dict
  contains:
    name: {description: Instance name., type: str}
    status: {description: LXD status, e.g. Running or Stopped., type: str}
    type: {description: container or virtual-machine., type: str}
    profiles: {description: Profiles in order., type: list, elements: str}
    config: {description: Config without volatile.* and image.* keys., type: dict}
    devices: {description: The instance's own devices (not those of its profiles)., type: dict}
addresses:
  description: Global addresses of the instance's NICs.
  returned: always
  type: dict
  sample: {"ipv4": ["10.77.0.23"], "ipv6": []}
ipv4:
  description: The first global IPv4 address, or null.
  returned: always
  type: str
  sample: 10.77.0.23
"""

import re

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _lxd
from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError

CONFIG_PREFIXES = ("limits.", "security.", "user.", "boot.", "environment.", "snapshots.", "cloud-init.", "migration.")
_CONFIG_KEY_RE = re.compile(r"^[a-z][a-z0-9-]*\.[A-Za-z0-9_.-]{1,200}$")
_LOWER_KEY_RE = re.compile(r"^[a-z0-9_.-]+$")
_DEVICE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_DEVICE_KEY_RE = re.compile(r"^[a-z][a-z0-9._-]{0,127}$")
_IMAGE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_POOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")
DEVICE_TYPES = ("nic", "disk", "proxy", "unix-char", "unix-block", "unix-hotplug", "usb", "gpu",
                "infiniband", "tpm", "pci", "none")
STATUS_FOR_STATE = {"started": "Running", "restarted": "Running", "stopped": "Stopped"}


def _string_value(value, field):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if not isinstance(value, str):
        raise ValidationError(field, "must be a string, number or boolean", value)
    if any(ord(ch) < 32 and ch not in "\t" for ch in value):
        raise ValidationError(field, "must not contain newlines or control characters", value)
    return value


def normalize_config(config):
    """Validated instance config with every value a string."""
    result = {}
    for key, value in (config or {}).items():
        field = "config.%s" % key
        if not isinstance(key, str) or not _CONFIG_KEY_RE.fullmatch(key):
            raise ValidationError(field, "is not a valid LXD config key", key)
        if not key.startswith(CONFIG_PREFIXES):
            raise ValidationError(field, "keys must start with one of %s" % ", ".join(CONFIG_PREFIXES))
        if not key.startswith(("user.", "environment.")) and not _LOWER_KEY_RE.fullmatch(key):
            raise ValidationError(field, "must be lowercase", key)
        result[key] = _string_value(value, field)
    return result


def normalize_devices(devices):
    """Validated devices: name -> {key: string}, each with a known ``type``."""
    result = {}
    for name, device in (devices or {}).items():
        field = "devices.%s" % name
        if not isinstance(name, str) or not _DEVICE_NAME_RE.fullmatch(name):
            raise ValidationError(field, "device names are 1-64 letters, digits, '.', '_' or '-'", name)
        if not isinstance(device, dict):
            raise ValidationError(field, "must be a dict of device options")
        clean = {}
        for key, value in device.items():
            if not isinstance(key, str) or not _DEVICE_KEY_RE.fullmatch(key):
                raise ValidationError("%s.%s" % (field, key), "is not a valid device option name", key)
            clean[key] = _string_value(value, "%s.%s" % (field, key))
        if clean.get("type") not in DEVICE_TYPES:
            raise ValidationError(field + ".type", "must be one of %s" % ", ".join(DEVICE_TYPES), clean.get("type"))
        result[name] = clean
    return result


def validate_params(params):
    """Check what argument_spec types cannot express; return normalized config/devices."""
    if params.get("image") is not None and not _IMAGE_RE.fullmatch(params["image"]):
        raise ValidationError("image", "must be an image alias or fingerprint (letters, digits, '.', '_', '/', '-')",
                              params["image"])
    server = params.get("image_server")
    if server is not None and (not re.fullmatch(r"^https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/-]*)?$", server)):
        raise ValidationError("image_server", "must be an https:// URL", server)
    if params.get("pool") is not None and not _POOL_RE.fullmatch(params["pool"]):
        raise ValidationError("pool", "is not a valid storage pool name", params["pool"])
    for profile in params.get("profiles") or []:
        if not isinstance(profile, str) or not _POOL_RE.fullmatch(profile):
            raise ValidationError("profiles", "profile names are letters, digits, '.', '_' or '-'", profile)
    if not 1 <= int(params.get("timeout") or 0) <= 3600:
        raise ValidationError("timeout", "must be 1-3600 seconds", params.get("timeout"))
    config = normalize_config(params.get("config")) if params.get("config") is not None else None
    devices = normalize_devices(params.get("devices")) if params.get("devices") is not None else None
    return config, devices


def image_source(params):
    source = {"type": "image", "alias": params["image"]}
    if params.get("image_server"):
        source.update(mode="pull", server=params["image_server"], protocol=params.get("image_protocol") or "simplestreams")
    return source


def plan(current, state, config=None, devices=None, profiles=None, pool=None):
    """What to do, as a pure function of the current summary (or None) and the wanted settings.

    Returns ``dict(create, delete, update, power, before, after)``: ``power`` is None, start,
    stop or restart; ``before``/``after`` are the summaries shown in the diff (``{}`` when absent).
    """
    before = dict(current) if current else {}
    if state == "absent":
        return dict(create=False, delete=bool(current), update=False, power=None, before=before, after={})

    base_profiles = current["profiles"] if current else ["default"]
    want_profiles = list(profiles) if profiles is not None else list(base_profiles)
    want_config = dict(config) if config is not None else dict(current["config"] if current else {})
    want_devices = dict(devices) if devices is not None else dict(current["devices"] if current else {})
    if pool:
        root = dict(want_devices.get("root") or {"type": "disk", "path": "/"})
        root["pool"] = pool
        want_devices["root"] = root

    status = current["status"] if current else "Stopped"
    power = None
    if state == "started" and status != "Running":
        power = "start"
    elif state == "stopped" and status != "Stopped":
        power = "stop"
    elif state == "restarted":
        power = "restart" if status == "Running" else "start"
    after = {
        "name": current["name"] if current else None,
        "status": STATUS_FOR_STATE.get(state, status),
        "type": current["type"] if current else None,
        "profiles": want_profiles,
        "config": want_config,
        "devices": want_devices,
    }
    update = bool(current) and (
        want_profiles != current["profiles"] or want_config != current["config"] or want_devices != current["devices"]
    )
    return dict(create=not current, delete=False, update=update, power=power, before=before, after=after)


def is_changed(steps):
    return bool(steps["create"] or steps["delete"] or steps["update"] or steps["power"])


class InstanceService(object):
    def __init__(self, module, client):
        self.module = module
        self.client = client
        self.params = module.params

    def run(self):
        params = self.params
        name = params["name"]
        config, devices = validate_params(params)
        if not self.module.check_mode:
            _lxd.wait_for_instance_tasks(self.client, name, params["timeout"])
        record = _lxd.get_instance(self.client, name)
        current = _lxd.instance_summary(record)
        steps = plan(current, params["state"], config=config, devices=devices,
                     profiles=params.get("profiles"), pool=params.get("pool"))
        if steps["after"]:
            steps["after"].update(name=name, type=(current or {}).get("type") or params["type"])
        if steps["create"] and not params.get("image"):
            raise LxdctlError("image is required to create instance %s" % name)

        result = dict(changed=is_changed(steps), diff=dict(before=steps["before"], after=steps["after"]))
        if not self.module.check_mode:
            self.apply(name, steps)
        if params["state"] == "absent":
            result.update(instance=None, addresses={"ipv4": [], "ipv6": []}, ipv4=None)
            return result

        if self.module.check_mode:
            instance = steps["after"]
            addresses = (_lxd.instance_addresses(self.client, name) if current and current["status"] == "Running"
                         and instance["status"] == "Running" else {"ipv4": [], "ipv6": []})
        else:
            instance = _lxd.instance_summary(_lxd.get_instance(self.client, name))
            if self._starts_in_background(steps):
                instance["status"] = "Running"  # what LXD is bringing about; the next run waits for it
                addresses = {"ipv4": [], "ipv6": []}
            elif instance["status"] == "Running" and params["wait"] and params["state"] in ("started", "restarted"):
                addresses = _lxd.wait_for_ipv4(self.client, name, params["timeout"])
            else:
                addresses = _lxd.instance_addresses(self.client, name)
        result.update(instance=instance, addresses=addresses, ipv4=(addresses["ipv4"] or [None])[0])
        return result

    def apply(self, name, steps):
        params = self.params
        after = steps["after"]
        if steps["delete"]:
            _lxd.delete_instance(self.client, name)
            return
        if steps["create"]:
            _lxd.create_instance(self.client, name, image_source(params), profiles=after["profiles"],
                                 config=after["config"], devices=after["devices"], instance_type=params["type"],
                                 ephemeral=params["ephemeral"])
        elif steps["update"]:
            _lxd.update_instance(self.client, name, after["profiles"], after["config"], after["devices"])
        if steps["power"] == "stop":
            _lxd.set_instance_state(self.client, name, "stop", timeout=params["timeout"], force=params["force_stop"])
        elif steps["power"] in ("start", "restart"):
            _lxd.set_instance_state(self.client, name, steps["power"], timeout=params["timeout"],
                                    force=params["force_stop"], wait=not self._starts_in_background(steps))

    def _starts_in_background(self, steps):
        return bool(self.params["background_start"] and self.params["state"] == "started" and steps["power"] == "start")


def argument_spec():
    spec = dict(
        name=dict(type=_names.argspec_instance_name, required=True),
        state=dict(type="str", default="started", choices=["present", "started", "stopped", "restarted", "absent"]),
        type=dict(type="str", default="container", choices=["container", "virtual-machine"]),
        image=dict(type="str"),
        image_server=dict(type="str"),
        image_protocol=dict(type="str", default="simplestreams", choices=["simplestreams", "lxd"]),
        pool=dict(type="str"),
        profiles=dict(type="list", elements="str"),
        config=dict(type="dict"),
        devices=dict(type="dict"),
        wait=dict(type="bool", default=True),
        background_start=dict(type="bool", default=False),
        ephemeral=dict(type="bool", default=False),
        timeout=dict(type="int", default=60),
        force_stop=dict(type="bool", default=False),
    )
    spec.update(_lxd.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    try:
        validate_params(module.params)  # bad input fails before LXD is even contacted
        client = _lxd.connect(module.params)
        result = InstanceService(module, client).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

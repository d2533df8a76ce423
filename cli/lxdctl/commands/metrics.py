"""``lxdctl metrics [<name>] [--output table|json|prometheus] [--watch] [--interval S]``.

Figures come from LXD's instance state: CPU usage in percent of one core (two samples of
the cumulative CPU nanoseconds, ``--interval`` apart), memory, root disk, network counters
and the number of processes.  Without a name: every container labelled
``user.lxdctl.project``.  ``--output prometheus`` prints the Prometheus text format (0.0.4).
"""
import sys
import time

import click

from lxdctl.collection import module_utils
from lxdctl.commands._ops import container_of, lxd, project_row
from lxdctl.options import rule
from lxdctl.output import emit

LABEL = "user.lxdctl.project"


def parse_size(text):
    """LXD's ``limits.memory`` (``512MiB``, ``1GB``, ``2048``) in bytes, or None (also for %)."""
    if not text or text.endswith("%"):
        return None
    units = {"B": 1, "kB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
             "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40}
    for unit in sorted(units, key=len, reverse=True):
        if text.endswith(unit):
            try:
                return int(float(text[:-len(unit)]) * units[unit])
            except ValueError:
                return None
    try:
        return int(text)
    except ValueError:
        return None


def sample(state):
    """The raw figures of one instance state (LXD's ``/1.0/instances/<name>/state``)."""
    state = state or {}
    network = {}
    for ifname, net in sorted((state.get("network") or {}).items()):
        if ifname == "lo" or (net or {}).get("type") == "loopback":
            continue
        counters = (net or {}).get("counters") or {}
        network[ifname] = {"rx_bytes": int(counters.get("bytes_received") or 0),
                           "tx_bytes": int(counters.get("bytes_sent") or 0),
                           "rx_packets": int(counters.get("packets_received") or 0),
                           "tx_packets": int(counters.get("packets_sent") or 0)}
    memory = state.get("memory") or {}
    disk = dict((dev, int((d or {}).get("usage") or 0)) for dev, d in sorted((state.get("disk") or {}).items()))
    return {"status": state.get("status") or "Missing", "cpu_ns": int((state.get("cpu") or {}).get("usage") or 0),
            "memory_bytes": int(memory.get("usage") or 0), "memory_peak_bytes": int(memory.get("usage_peak") or 0),
            "swap_bytes": int(memory.get("swap_usage") or 0), "disk_bytes": disk, "network": network,
            "processes": int(state.get("processes") or 0), "time": time.monotonic()}


def cpu_percent(first, second):
    """Percent of one core between two samples (``cpu_ns`` and ``time`` in seconds)."""
    elapsed = second["time"] - first["time"]
    used = second["cpu_ns"] - first["cpu_ns"]
    if elapsed <= 0 or used < 0:
        return 0.0
    return round(used / (elapsed * 1e9) * 100.0, 2)


def figures(project, container, first, second, config):
    out = dict(second)
    out.pop("time", None)
    out.update(project=project, container=container, running=second["status"] == "Running",
               cpu_percent=cpu_percent(first, second) if second["status"] == "Running" else 0.0,
               cpu_seconds=round(second["cpu_ns"] / 1e9, 3),
               memory_limit_bytes=parse_size((config or {}).get("limits.memory")),
               cpu_limit=(config or {}).get("limits.cpu") or None)
    out.pop("cpu_ns", None)
    return out


def _escape(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels):
    return "{%s}" % ",".join('%s="%s"' % (k, _escape(v)) for k, v in sorted(labels.items()))


METRICS = [
    ("lxdctl_up", "gauge", "1 when the project's container runs."),
    ("lxdctl_cpu_usage_percent", "gauge", "CPU usage over the sampling interval, percent of one core."),
    ("lxdctl_cpu_seconds_total", "counter", "CPU time the container used, seconds."),
    ("lxdctl_memory_usage_bytes", "gauge", "Memory in use."),
    ("lxdctl_memory_peak_bytes", "gauge", "Peak memory use."),
    ("lxdctl_memory_limit_bytes", "gauge", "The container's memory limit (when it has one)."),
    ("lxdctl_swap_usage_bytes", "gauge", "Swap in use."),
    ("lxdctl_disk_usage_bytes", "gauge", "Disk space used, per disk device."),
    ("lxdctl_network_receive_bytes_total", "counter", "Bytes received, per interface."),
    ("lxdctl_network_transmit_bytes_total", "counter", "Bytes sent, per interface."),
    ("lxdctl_network_receive_packets_total", "counter", "Packets received, per interface."),
    ("lxdctl_network_transmit_packets_total", "counter", "Packets sent, per interface."),
    ("lxdctl_processes", "gauge", "Processes in the container."),
]


def render_prometheus(rows):
    """The rows in the Prometheus text exposition format."""
    samples = dict((name, []) for name, _kind, _help in METRICS)
    for row in rows:
        base = {"project": row["project"], "container": row["container"]}
        samples["lxdctl_up"].append((_labels(**base), 1 if row["running"] else 0))
        samples["lxdctl_cpu_usage_percent"].append((_labels(**base), row["cpu_percent"]))
        samples["lxdctl_cpu_seconds_total"].append((_labels(**base), row["cpu_seconds"]))
        samples["lxdctl_memory_usage_bytes"].append((_labels(**base), row["memory_bytes"]))
        samples["lxdctl_memory_peak_bytes"].append((_labels(**base), row["memory_peak_bytes"]))
        if row.get("memory_limit_bytes"):
            samples["lxdctl_memory_limit_bytes"].append((_labels(**base), row["memory_limit_bytes"]))
        samples["lxdctl_swap_usage_bytes"].append((_labels(**base), row["swap_bytes"]))
        for device, used in sorted(row["disk_bytes"].items()):
            samples["lxdctl_disk_usage_bytes"].append((_labels(device=device, **base), used))
        for ifname, net in sorted(row["network"].items()):
            labels = _labels(interface=ifname, **base)
            samples["lxdctl_network_receive_bytes_total"].append((labels, net["rx_bytes"]))
            samples["lxdctl_network_transmit_bytes_total"].append((labels, net["tx_bytes"]))
            samples["lxdctl_network_receive_packets_total"].append((labels, net["rx_packets"]))
            samples["lxdctl_network_transmit_packets_total"].append((labels, net["tx_packets"]))
        samples["lxdctl_processes"].append((_labels(**base), row["processes"]))
    lines = []
    for name, kind, text in METRICS:
        if not samples[name]:
            continue
        lines.append("# HELP %s %s" % (name, text))
        lines.append("# TYPE %s %s" % (name, kind))
        for labels, value in samples[name]:
            lines.append("%s%s %s" % (name, labels, _number(value)))
    return "\n".join(lines) + "\n"


def _number(value):
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def _human(size):
    if size is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return ("%d%s" % (size, unit)) if unit == "B" else ("%.1f%s" % (size, unit))
        size /= 1024.0


def targets(name):
    """``[(project, container, config)]`` to sample."""
    client = lxd()
    if name:
        row = project_row(name)
        container = container_of(row)
        try:
            config = client.api.instances[container].get().json()["metadata"].get("config") or {}
        except Exception:  # noqa: BLE001 - a missing container shows as Missing
            config = {}
        return client, [(name, container, config)]
    try:
        instances = client.api.instances.get(params={"recursion": 1}).json()["metadata"]
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException("Failed to list LXD instances: %s" % exc)
    found = []
    for inst in instances:
        config = inst.get("config") or {}
        if config.get(LABEL):
            found.append((config[LABEL], inst["name"], config))
    return client, sorted(found)


def collect(client, items, interval):
    lxd_utils = module_utils("_lxd")

    def state_of(container):
        try:
            return lxd_utils.instance_state(client, container)
        except Exception:  # noqa: BLE001 - shows as Missing
            return None

    first = dict((c, sample(state_of(c))) for _p, c, _cfg in items)
    if items and interval > 0:
        time.sleep(interval)
    rows = []
    for project, container, config in items:
        second = sample(state_of(container))
        rows.append(figures(project, container, first[container], second, config))
    return rows


def show(rows, output):
    if output == "prometheus":
        click.echo(render_prometheus(rows), nl=False)
    elif output == "json":
        emit(rows, "json")
    else:
        table = []
        for row in rows:
            rx = sum(n["rx_bytes"] for n in row["network"].values())
            tx = sum(n["tx_bytes"] for n in row["network"].values())
            table.append({"project": row["project"], "status": row["status"].lower(),
                          "cpu": "%.1f%%" % row["cpu_percent"],
                          "memory": _human(row["memory_bytes"]) + (
                              "/" + _human(row["memory_limit_bytes"]) if row.get("memory_limit_bytes") else ""),
                          "disk": _human(sum(row["disk_bytes"].values())) if row["disk_bytes"] else "-",
                          "net_rx": _human(rx), "net_tx": _human(tx), "procs": row["processes"]})
        emit(table, "table", columns=["project", "status", "cpu", "memory", "disk", "net_rx", "net_tx", "procs"])


@click.command("metrics")
@click.argument("name", required=False, callback=rule("project_name"))
@click.option("--output", "-o", type=click.Choice(["table", "json", "prometheus"]), default="table",
              show_default=True, help="A table, JSON, or the Prometheus text format.")
@click.option("--watch", "-w", is_flag=True, help="Refresh until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True,
              help="Seconds between the two CPU samples (and between refreshes with --watch).")
@click.option("--count", type=click.IntRange(1), hidden=True, help="With --watch, stop after this many refreshes.")
def metrics(name, output, watch, interval, count):
    """CPU, memory, disk, network and processes of project NAME (or of all projects)."""
    client, items = targets(name)
    shown = 0
    try:
        while True:
            rows = collect(client, items, interval)
            if watch and output == "table" and sys.stdout.isatty():
                click.clear()
            show(rows, output)
            shown += 1
            if not watch or (count and shown >= count):
                break
            sys.stdout.flush()
    except KeyboardInterrupt:
        pass
    if name and rows and rows[0]["status"] == "Missing":
        raise click.ClickException("project %s has no container (%s does not exist)" % (name, rows[0]["container"]))


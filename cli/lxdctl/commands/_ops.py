"""Shared by the read-only and interactive operations commands (logs, metrics, exec, checks):
find a project and its container, talk to LXD directly (ARCHITECTURE.md allows it for these)."""
import click

from lxdctl.collection import module_utils


def _errors():
    return module_utils("_errors")


def open_state():
    state = module_utils("_state")
    try:
        return state.StateStore.open()
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)


def project_row(name):
    """The project's state row; a clear error when there is no such project."""
    store = open_state()
    try:
        row = store.get_project(name)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)
    finally:
        store.close()
    if row is None:
        raise click.ClickException("project %s does not exist (see `lxdctl list`)" % name)
    return row


def all_projects():
    store = open_state()
    try:
        return store.list_projects()
    finally:
        store.close()


def container_of(row):
    return row.get("container_name") or module_utils("_names").container_name(row["name"])


def lxd():
    client = module_utils("_lxd")
    try:
        return client.connect({})
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)


def instance_state(client, container):
    try:
        return module_utils("_lxd").instance_state(client, container)
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)


def running_container(name):
    """``(project row, container name)`` of a project whose container runs, or a clear error."""
    row = project_row(name)
    container = container_of(row)
    state = instance_state(lxd(), container)
    if state is None:
        raise click.ClickException("project %s has no container (%s does not exist)" % (name, container))
    if state.get("status") != "Running":
        raise click.ClickException("the container %s of project %s is %s, not running (start it first)"
                                   % (container, name, (state.get("status") or "unknown").lower()))
    return row, container


def platform_config():
    config = module_utils("_platform_config")
    try:
        return config.load()
    except _errors().LxdctlError as exc:
        raise click.ClickException(exc.msg)

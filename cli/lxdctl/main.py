"""The ``lxdctl`` command group.  Each resource's commands live in ``lxdctl/commands/``."""
import importlib

import click

from lxdctl import __version__

# command name -> (module under lxdctl.commands, attribute).  Aliases point at the same object.
COMMANDS = {
    "init": ("init", "init"),
    "platform": ("platform", "platform"),
    "image": ("image", "image"),
    "project": ("project", "project"),
    "create": ("project", "create"),
    "list": ("project", "list_projects"),
    "status": ("project", "status"),
    "delete": ("project", "delete"),
    "env": ("env", "env"),
    "db": ("db", "db"),
    "dns": ("dns", "dns"),
    "ssl": ("ssl", "ssl"),
    "logs": ("logs", "logs"),
    "metrics": ("metrics", "metrics"),
    "exec": ("exec", "exec_command"),
    "container": ("exec", "container"),
    "health-check": ("checks", "health_check"),
    "smoke-test": ("checks", "smoke_test"),
    "deploy": ("deploy", "deploy"),
    "deployments": ("deploy", "deployments"),
    "pipeline": ("pipeline", "pipeline"),
    "test": ("test_cmd", "test"),
    "serve": ("serve", "serve"),
    "token": ("token", "token"),
    "user": ("user", "user"),
    "audit": ("audit", "audit"),
    "config": ("config", "config"),
    "reconcile": ("reconcile", "reconcile"),
}


class LxdctlGroup(click.Group):
    """Loads command modules on first use so ``lxdctl --help`` stays fast."""

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(COMMANDS))

    def get_command(self, ctx, cmd_name):
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in COMMANDS:
            return found
        if cmd_name != "config":  # remote mode (lxdctl config set server URL): the server runs the command
            from lxdctl.api import client

            if client.remote_settings() is not None:
                return (client.local_only_command if cmd_name in client.LOCAL_ONLY else client.remote_command)(cmd_name)
        module_name, attr = COMMANDS[cmd_name]
        return getattr(importlib.import_module("lxdctl.commands." + module_name), attr)


@click.group(cls=LxdctlGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="lxdctl")
def cli():
    """lxdctl gives every project its own LXD container, database, cache, DNS name and
    nginx site, and deploys it from git.

    \b
    Start here:
      lxdctl init --yes            set up this host (LXD, PowerDNS, PostgreSQL, ...)
      lxdctl platform status       see what runs and where
    """


if __name__ == "__main__":
    cli()

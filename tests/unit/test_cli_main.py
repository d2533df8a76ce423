"""The command group itself: help, version, registration."""
from click.testing import CliRunner

from lxdctl import __version__
from lxdctl.main import COMMANDS, cli


def test_version():
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert __version__ in result.output


def test_help_lists_every_command():
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0, result.output
    for name in COMMANDS:
        assert name in result.output


def test_registered_commands_resolve_to_click_commands():
    for name in COMMANDS:
        command = cli.get_command(None, name)
        assert command is not None and callable(command), name
        assert command.help or command.short_help, "%s has no help text" % name


def test_unknown_command_is_a_usage_error():
    result = CliRunner().invoke(cli, ["no-such-command"])
    assert result.exit_code == 2
    assert "No such command" in result.output

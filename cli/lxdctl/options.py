"""Shared click options and validators.

Validators wrap the collection's single rules (``module_utils/_names.py``) so the CLI
rejects exactly what the modules reject, with the same message, before any playbook runs.
"""
import functools

import click

from lxdctl.collection import module_utils


def rule(name):
    """A click callback that validates through ``_names.<name>``; None passes through."""

    def callback(ctx, param, value):
        if value is None:
            return None
        names = module_utils("_names")
        errors = module_utils("_errors")
        check = getattr(names, name)
        try:
            if isinstance(value, tuple):
                return tuple(check(item, param.name) for item in value)
            return check(value, param.name)
        except errors.ValidationError as exc:
            raise click.BadParameter(exc.rule, ctx=ctx, param=param)

    return callback


def output_option(func):
    return click.option(
        "--output",
        "-o",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
        help="How to print the result: a table for people, json for scripts.",
    )(func)


def run_options(func):
    """--dry-run and --verbose, for every command that runs a playbook."""

    @click.option("--dry-run", is_flag=True, help="Show what would change (check mode with diff); change nothing.")
    @click.option("-v", "--verbose", count=True, help="Show Ansible's own output (repeat for more).")
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper


def yes_option(prompt):
    return click.option(
        "--yes",
        "-y",
        is_flag=True,
        help="Do not ask for confirmation.",
        callback=lambda ctx, param, value: value or _confirm(prompt, ctx),
        expose_value=False,
        is_eager=False,
    )


def _confirm(prompt, ctx):
    if not click.get_text_stream("stdin").isatty():
        raise click.UsageError("refusing to proceed without --yes when stdin is not a terminal", ctx=ctx)
    click.confirm(prompt.format(**ctx.params), abort=True)
    return True

"""Printing results: a plain table for people or JSON for scripts, always on stdout."""
import json

import click


def emit(data, output, columns=None, title=None):
    """Print ``data`` (a dict or a list of dicts) as JSON or as a table of ``columns``."""
    if output == "json":
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))
        return
    if title:
        click.echo(title)
    if isinstance(data, dict) and columns is None:
        width = max((len(str(key)) for key in data), default=0)
        for key, value in data.items():
            click.echo("%s  %s" % (str(key).ljust(width), _cell(value)))
        return
    rows = data if isinstance(data, list) else [data]
    columns = columns or (sorted(rows[0]) if rows else [])
    table = [[col.upper() for col in columns]] + [[_cell(row.get(col)) for col in columns] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(columns))]
    for line in table:
        click.echo("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
    if not rows:
        click.echo("(none)")


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(item) for item in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)

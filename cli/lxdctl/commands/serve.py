"""``lxdctl serve``: the REST/WebSocket API server (see ``lxdctl.api``)."""
import os

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="The TCP port.")
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="How many background jobs run at the same time (0: queue them only, for another server).")
def serve(host, port, workers):
    """Serve the lxdctl API (REST under /api, WebSockets, durable jobs) until stopped.

    \b
    Create an admin token first:  lxdctl token create ci --role admin --all-projects
    OpenAPI document:             GET /api/openapi.json
    """
    os.environ["LXDCTL_LOCAL"] = "1"  # what the server runs, runs here
    if host not in ("127.0.0.1", "::1", "localhost"):
        click.echo("warning: the API speaks plain HTTP; expose it only behind a TLS proxy (nginx) that sets "
                   "X-Forwarded-Proto: https", err=True)
    from lxdctl.api.server import serve as run

    raise SystemExit(run(host, port, workers))

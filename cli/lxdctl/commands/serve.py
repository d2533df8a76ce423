"""``lxdctl serve``: the REST/WebSocket API server (see ``lxdctl.api``)."""
import os

import click


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="The TCP port.")
@click.option("--workers", type=click.IntRange(0, 64), default=2, show_default=True,
              help="How many background jobs run at the same time (0: queue them only, for another server).")
@click.option("--tls-cert", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Serve HTTPS with this certificate (PEM, the chain after it); needs --tls-key.")
@click.option("--tls-key", type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="The certificate's private key (PEM).")
@click.option("--tls-self-signed", is_flag=True,
              help="Serve HTTPS with a self-signed certificate, made once under /etc/lxdctl/api-tls and reused; "
                   "its fingerprint is printed for `lxdctl config set fingerprint`.")
def serve(host, port, workers, tls_cert, tls_key, tls_self_signed):
    """Serve the lxdctl API (REST under /api, WebSockets, durable jobs) until stopped.

    \b
    Create an admin token first:  lxdctl token create ci --role admin --all-projects
    OpenAPI document:             GET /api/openapi.json
    HTTPS:                        --tls-cert FILE --tls-key FILE, or --tls-self-signed
    """
    os.environ["LXDCTL_LOCAL"] = "1"  # what the server runs, runs here
    from lxdctl.api import tls

    if tls_self_signed and (tls_cert or tls_key):
        raise click.BadParameter("give either --tls-self-signed or --tls-cert/--tls-key", param_hint="--tls-self-signed")
    if bool(tls_cert) != bool(tls_key):
        raise click.BadParameter("--tls-cert and --tls-key go together", param_hint="--tls-key" if tls_cert else
                                 "--tls-cert")
    context = None
    try:
        if tls_self_signed:
            tls_cert, tls_key = tls.self_signed(host)
        if tls_cert:
            context = tls.server_context(tls_cert, tls_key)
    except (tls.TLSError, OSError) as exc:
        raise click.ClickException(str(exc))
    if context is not None:
        click.echo("lxdctl serve: TLS certificate %s, fingerprint %s" % (tls_cert, tls.fingerprint_of_pem(tls_cert)),
                   err=True)
    elif host not in ("127.0.0.1", "::1", "localhost"):
        click.echo("warning: the API speaks plain HTTP; use --tls-cert/--tls-key or --tls-self-signed, or expose it "
                   "only behind a TLS proxy (nginx)", err=True)
    from lxdctl.api.server import serve as run

    raise SystemExit(run(host, port, workers, ssl_context=context))

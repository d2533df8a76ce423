"""The lxdctl API server (``lxdctl serve``): REST under /api, WebSockets, durable jobs, auth.

Layout: ``router`` (routes and path parameters), ``auth`` (tokens, users, roles, TOTP,
sessions, rate limits), ``jobs`` (durable background jobs run by worker processes),
``websocket`` (RFC 6455 server side), ``openapi`` (generated from the router table),
``server`` (the HTTP server), ``routes_*`` (one module per resource), ``cli_bridge``
(running CLI commands for jobs and the remote CLI).
"""

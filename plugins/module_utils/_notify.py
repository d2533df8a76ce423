# -*- coding: utf-8 -*-
"""Success / failure notices to Slack- and Discord-compatible incoming webhooks (urllib POSTs).

URLs come from the pipeline file's ``notify: {slack: URL, discord: URL}`` and from
``lxdctl pipeline create --notify-slack URL --notify-discord URL`` (stored in the pipeline's
config).  A notice that cannot be sent is logged in the run; it never changes the run's status.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import urllib.error
import urllib.request

TIMEOUT = 5


def message(project, number, status, facts):
    commit = (facts.get("commit") or "")[:12]
    text = "lxdctl pipeline %s run #%d %s (branch %s, commit %s)" % (
        project, number, "succeeded" if status == "success" else status, facts.get("branch") or "-", commit or "-")
    stages = facts.get("stages") or []
    if stages:
        text += ": " + ", ".join("%s %s" % (s["name"], s["status"]) for s in stages)
    url = (facts.get("environment") or {}).get("url")
    if url:
        text += " - " + url
    return text


def payload(kind, text):
    """Slack reads ``text``; Discord reads ``content``."""
    return {"content": text} if kind == "discord" else {"text": text}


def send(url, body):
    if not url.startswith(("http://", "https://")):
        raise ValueError("only http(s) URLs are used")
    data = json.dumps(body).encode("utf-8")
    request = urllib.request.Request(url, data=data, method="POST",
                                     headers={"Content-Type": "application/json", "User-Agent": "lxdctl-notify"})
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - http(s) checked above
        return response.status


def send_all(urls, text):
    """POST to each ``{kind: url}``; returns one log line per notice."""
    lines = []
    for kind in sorted(urls):
        try:
            status = send(urls[kind], payload(kind, text))
            lines.append("notify %s: sent (HTTP %s)" % (kind, status))
        except (OSError, ValueError, urllib.error.URLError) as exc:
            lines.append("notify %s: not sent: %s" % (kind, exc))
    return lines

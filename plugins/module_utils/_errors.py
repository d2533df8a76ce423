# -*- coding: utf-8 -*-
"""The one error type the collection raises, and the decorator that maps backend errors to it.

Every client wrapper (``_lxd``, ``_pdns``, ``_postgres`` ...) raises ``LxdctlError`` with a
message a person can act on.  A module's ``main()`` catches exactly this type and hands
``err.msg`` to ``fail_json``; the CLI prints the same text.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import functools


class LxdctlError(Exception):
    """A failure with a readable message and optional structured details."""

    def __init__(self, msg, **details):
        super(LxdctlError, self).__init__(msg)
        self.msg = msg
        self.details = details

    def __str__(self):
        return self.msg


class ValidationError(LxdctlError, ValueError):
    """Bad input. ``field`` names the setting and ``rule`` what it must satisfy."""

    def __init__(self, field, rule, value=None):
        shown = "" if value is None else " (got %r)" % (_shorten(value),)
        super(ValidationError, self).__init__("%s: %s%s" % (field, rule, shown), field=field, rule=rule)
        self.field = field
        self.rule = rule


def _shorten(value, limit=80):
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def handle_errors(context, not_found=(), none_on_not_found=False):
    """Wrap a client call so that backend exceptions become ``LxdctlError``.

    ``context`` is a format string filled from the call's keyword arguments and the
    positional ones by index, e.g. ``"Failed to get zone {0}"``.  Exceptions listed in
    ``not_found`` become ``None`` when ``none_on_not_found`` is set, the amazon.aws way.
    """

    def decorator(func):
        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            try:
                return func(*args, **kwargs)
            except LxdctlError:
                raise
            except Exception as exc:  # noqa: BLE001 - every backend error gets context here
                if none_on_not_found and not_found and isinstance(exc, tuple(not_found)):
                    return None
                try:
                    what = context.format(*args[1:], **kwargs)
                except (IndexError, KeyError):
                    what = context
                raise LxdctlError("%s: %s" % (what, _describe(exc)), cause=type(exc).__name__)

        return wrapper

    return decorator


def _describe(exc):
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0] if "\n" in text and len(text) > 300 else text

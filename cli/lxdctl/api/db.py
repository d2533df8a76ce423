"""State-store access for the API: one ``StateStore`` per thread (SQLite connections are per thread).

The server's worker threads live as long as the server, so each keeps its store open.
"""
import contextlib
import datetime
import json
import threading

from lxdctl.collection import module_utils

_local = threading.local()


def state():
    return module_utils("_state")


def errors():
    return module_utils("_errors")


def store():
    """This thread's open store."""
    current = getattr(_local, "store", None)
    if current is None or current._conn is None:
        current = _local.store = state().StateStore.open()
    return current


def close_thread_store():
    current = getattr(_local, "store", None)
    if current is not None:
        current.close()
        _local.store = None


@contextlib.contextmanager
def borrowed(given=None):
    """``given`` if there is one, else this thread's store."""
    yield given if given is not None else store()


def now():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def ts_in(seconds):
    return (datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")


def parse_ts(text):
    if text is None:
        return None
    if isinstance(text, datetime.datetime):
        return text
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=datetime.timezone.utc)


def ts_text(value):
    if value is None or isinstance(value, str):
        return value
    return value.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def dumps(value):
    return None if value is None else json.dumps(value, sort_keys=True, default=str)


def loads(value):
    if value is None or not isinstance(value, (str, bytes)):
        return value
    return json.loads(value)


def rows(st, sql, params=()):
    return st._read(sql, params)


def one(st, sql, params=()):
    return st._one(sql, params)


def execute(st, sql, params=()):
    return st._execute(sql, params)


def module_utils_config():
    """The platform configuration, or {} when there is none."""
    from lxdctl.collection import module_utils

    try:
        return module_utils("_platform_config").load()
    except Exception:  # noqa: BLE001
        return {}

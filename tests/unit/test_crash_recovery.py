"""Unit tests of what makes a killed restore or delete recoverable (no services: a fake client).

- ``_postgres.restore_names``: fixed scratch names, never another tenant's database;
- ``db_restore.RestoreService._recover_postgres``: what each leftover of a killed restore
  becomes before the next restore starts;
- ``_postgres.plan_absent``: a tenant's other databases (a killed restore's copy, an
  ``--into`` copy) are dropped before its role, which could not be dropped otherwise.
"""
from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _postgres
from ansible_collections.lxdctl.platform.plugins.modules import db_restore


class FakePostgres:
    def __init__(self, databases):
        self.databases = dict(databases)  # name -> accepts connections
        self.ran = []

    def database_names(self, names):
        return {n: self.databases[n] for n in names if n in self.databases}

    def execute(self, statements, check_mode=False):
        self.ran += [s.display() for s in statements]


def recover(databases):
    pg = FakePostgres(databases)
    db_restore.RestoreService._recover_postgres(pg, "p_app")
    return pg.ran


def test_restore_names_are_fixed_and_outside_the_tenant_name_space():
    work, old = _postgres.restore_names("p_app")
    assert (work, old) == ("p_app__restoring", "p_app__replaced")
    assert _postgres.restore_names("p_app") == (work, old)
    longest = _postgres.restore_names("p_" + "a" * 61)
    assert all(len(name) <= 63 for name in longest)
    # a project name has single inner hyphens, so no derived tenant name holds "__"
    assert "__" not in _names.sql_name("p_" + "my-app".replace("-", "_"), "name", "postgres")


def test_a_clean_state_needs_no_recovery():
    assert recover({"p_app": True}) == []


def test_a_half_loaded_copy_is_dropped():
    assert recover({"p_app": True, "p_app__restoring": True}) == ['DROP DATABASE IF EXISTS "p_app__restoring" WITH (FORCE)']


def test_a_replaced_database_left_after_the_swap_is_dropped():
    assert recover({"p_app": True, "p_app__replaced": False}) == ['DROP DATABASE IF EXISTS "p_app__replaced" WITH (FORCE)']


def test_connections_refused_by_a_killed_swap_are_let_in_again():
    assert recover({"p_app": False}) == ['ALTER DATABASE "p_app" WITH ALLOW_CONNECTIONS true']


def test_a_swap_cut_short_puts_the_old_database_back():
    assert recover({"p_app__replaced": False, "p_app__restoring": True}) == [
        'ALTER DATABASE "p_app__replaced" RENAME TO "p_app"',
        'DROP DATABASE IF EXISTS "p_app__restoring" WITH (FORCE)',
        'ALTER DATABASE "p_app" WITH ALLOW_CONNECTIONS true',
    ]


def test_tenant_removal_drops_the_other_databases_of_its_role_first():
    role = {"login": True, "owned_databases": ["p_app", "p_app__restoring", "p_app_copy"]}
    shown = [s.display() for s in _postgres.plan_absent("p_app", "p_app", role, {"owner": "p_app"})]
    assert shown[1:] == [
        'DROP DATABASE IF EXISTS "p_app" WITH (FORCE)',
        'DROP DATABASE IF EXISTS "p_app__restoring" WITH (FORCE)',
        'DROP DATABASE IF EXISTS "p_app_copy" WITH (FORCE)',
        'DROP ROLE IF EXISTS "p_app"',
    ]


class FakeResponse:
    def __init__(self, status, text):
        self.status_code, self.text, self.content, self.reason = status, text, text.encode(), "x"

    def json(self):
        import json

        return json.loads(self.text)


class FakeSession:
    def __init__(self, answers):
        self.answers, self.calls, self.headers = list(answers), 0, {}

    def request(self, *args, **kwargs):
        self.calls += 1
        return self.answers.pop(0)


def pdns_with(answers, monkeypatch):
    from ansible_collections.lxdctl.platform.plugins.module_utils import _pdns

    monkeypatch.setattr(_pdns.time, "sleep", lambda seconds: None)
    client = _pdns.PowerDNS({"pdns_api_url": "http://127.0.0.1:1", "pdns_api_key": "k", "pdns_server_id": "localhost"})
    client.session = FakeSession(answers)
    return client


LOCKED = '{"error": "GSQLBackend unable to delete RRSet: database is locked (5)"}'


def test_powerdns_locked_by_a_parallel_writer_is_retried(monkeypatch):
    client = pdns_with([FakeResponse(500, LOCKED), FakeResponse(500, LOCKED), FakeResponse(204, "")], monkeypatch)
    assert client.delete_rrset("lxdctl.test.", "a.lxdctl.test.", "A") == {}
    assert client.session.calls == 3


def test_powerdns_other_server_errors_are_not_retried(monkeypatch):
    import pytest

    from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

    client = pdns_with([FakeResponse(500, '{"error": "something else"}')], monkeypatch)
    with pytest.raises(LxdctlError, match="PowerDNS answered 500: something else"):
        client.delete_rrset("lxdctl.test.", "a.lxdctl.test.", "A")
    assert client.session.calls == 1


def test_powerdns_bare_server_error_of_a_locked_backend_is_retried_for_repeatable_calls(monkeypatch):
    bare = "Internal Server Error"
    client = pdns_with([FakeResponse(500, bare), FakeResponse(204, "")], monkeypatch)
    assert client.delete_rrset("lxdctl.test.", "a.lxdctl.test.", "A") == {}
    assert client.session.calls == 2


def test_powerdns_bare_server_error_of_a_zone_create_is_not_repeated(monkeypatch):
    import pytest

    from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

    client = pdns_with([FakeResponse(500, "Internal Server Error")], monkeypatch)
    with pytest.raises(LxdctlError, match="PowerDNS answered 500: Internal Server Error"):
        client.create_zone("it.test.", "Native", [])
    assert client.session.calls == 1

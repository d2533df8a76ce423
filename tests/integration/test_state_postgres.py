"""The state store's shared suite against both backends: SQLite and the platform's PostgreSQL.

Every test of tests/unit/test_state_store.py that takes ``state_url`` runs here twice: once
on a temporary SQLite file and once on a fresh PostgreSQL database ``it_state_<random>``,
created as the platform admin (platform.json, section postgres) and dropped afterwards.
Rows are checked with ``psql`` (resp. ``sqlite3``), independent of the store's own code.
"""
import secrets

import psycopg2
import psycopg2.sql
import pytest

from tests.unit import test_state_store as shared

pytestmark = pytest.mark.integration

SHARED_TESTS = [
    "test_open_migrates_and_is_idempotent",
    "test_project_create_update_unchanged",
    "test_project_plan_does_not_write",
    "test_project_bad_fields_refused",
    "test_project_bad_names_refused",
    "test_list_projects_ordered",
    "test_delete_project_cascades",
    "test_env_round_trip_literal_and_encrypted",
    "test_tampered_value_is_detected",
    "test_ciphertext_swapped_between_rows_is_detected",
    "test_wrong_key_gives_clear_error",
    "test_key_file_created_private",
    "test_secrets_get_or_create_and_rotate",
    "test_secret_row_swap_between_projects_detected",
    "test_databases_crud",
    "test_dns_records_crud",
    "test_deployments",
    "test_pipelines_and_runs",
    "test_audit_log_redacts_secrets",
    "test_lock_live_owner_refused_then_released",
    "test_lock_of_dead_pid_is_taken_over",
    "test_lock_of_live_pid_on_other_host_waits_for_expiry",
    "test_expired_lock_is_taken_over",
    "test_time_based_lock_without_pid",
    "test_processes_racing_for_a_lock_exactly_one_wins",
    "test_processes_racing_for_a_secret_get_the_same_value",
    "test_concurrent_first_open_migrates_once",
    "test_processes_racing_to_create_a_project_get_one_row",
]
for _name in SHARED_TESTS:
    globals()[_name] = getattr(shared, _name)

key_file = shared.key_file
open_store = shared.open_store
store = shared.store
raw = shared.raw


def _admin_connect(pg, dbname="postgres"):
    conn = psycopg2.connect(host=pg["host"], port=pg["port"], user=pg["admin_user"], password=pg["admin_password"],
                            dbname=dbname, connect_timeout=10)
    conn.autocommit = True
    return conn


@pytest.fixture
def postgres_url(platform_config):
    pg = platform_config["postgres"]
    name = "it_state_%s" % secrets.token_hex(4)
    admin = _admin_connect(pg)
    try:
        with admin.cursor() as cur:
            cur.execute(psycopg2.sql.SQL("CREATE DATABASE {}").format(psycopg2.sql.Identifier(name)))
        yield "postgresql://%s:%s@%s:%s/%s" % (pg["admin_user"], pg["admin_password"], pg["host"], pg["port"], name)
        with admin.cursor() as cur:
            cur.execute(psycopg2.sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(psycopg2.sql.Identifier(name)))
    finally:
        admin.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request, tmp_path):
    if request.param == "sqlite":
        return "sqlite:///%s" % (tmp_path / "statedir" / "state.db")
    return request.getfixturevalue("postgres_url")


def test_postgres_schema_types(postgres_url, key_file):
    """PostgreSQL gets native types: identity ids, booleans, JSONB, timestamptz."""
    with shared.StateStore.open(postgres_url, key_file=key_file) as store:
        assert store.backend == "postgresql"
        shared.make_project(store, ssl=True, spec={"a": 1})
    rows = shared.RawClient(postgres_url).rows(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = 'projects' "
        "AND column_name IN ('id', 'ssl', 'spec', 'created_at')")
    assert dict((r["column_name"], r["data_type"]) for r in rows) == {
        "id": "bigint", "ssl": "boolean", "spec": "jsonb", "created_at": "timestamp with time zone"}
    assert shared.RawClient(postgres_url).rows("SELECT ssl, spec->>'a' AS a FROM projects") == [{"ssl": True, "a": "1"}]

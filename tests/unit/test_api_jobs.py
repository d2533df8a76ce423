"""Durable jobs against a temporary SQLite state: claim once, adopt, re-queue once, then fail."""
import os
import subprocess
import sys

import pytest

from lxdctl.api import cli_bridge, db, jobs


@pytest.fixture()
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("LXDCTL_DATABASE_URL", "sqlite:///%s/state.db" % tmp_path)
    monkeypatch.setenv("LXDCTL_STATE_KEY_FILE", str(tmp_path / "key"))
    db.close_thread_store()
    st = db.store()
    yield st
    db.close_thread_store()


def test_enqueue_claim_exactly_once(store):
    first = jobs.enqueue("playbook", {"playbook": "noop_wait"}, project="p1", actor="t", store=store)
    second = jobs.enqueue("playbook", {"playbook": "noop_wait"}, store=store)
    one, two = jobs.Dispatcher(), jobs.Dispatcher()
    one.store = store
    two.store = db.state().StateStore.open()
    assert one.claim() == (first, 1)
    assert two.claim() == (second, 1)
    assert one.claim() is None and two.claim() is None
    row = jobs.get_job(first, store)
    assert row["status"] == "running" and row["attempts"] == 1 and row["payload"] == {"playbook": "noop_wait"}
    with pytest.raises(ValueError):
        jobs.enqueue("no-such-kind", {}, store=store)
    two.store.close()


def test_recover_requeues_once_then_fails(store):
    job_id = jobs.enqueue("playbook", {"playbook": "noop_wait"}, store=store)
    d = jobs.Dispatcher()
    d.store = store
    assert d.claim() == (job_id, 1)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    db.execute(store, "UPDATE jobs SET worker_pid = ?, worker_start = ? WHERE id = ?", (dead.pid, "1", job_id))
    d.recover()
    row = jobs.get_job(job_id, store)
    assert row["status"] == "queued" and "re-queued once" in row["error"]
    assert d.claim() == (job_id, 2)
    d.recover()  # no worker recorded: died between claim and spawn
    row = jobs.get_job(job_id, store)
    assert row["status"] == "failed" and row["error"].startswith("interrupted") and row["attempts"] == 2
    assert d.claim() is None


def test_recover_adopts_a_live_worker(store):
    job_id = jobs.enqueue("playbook", {"playbook": "noop_wait"}, store=store)
    d = jobs.Dispatcher()
    d.store = store
    d.claim()
    db.execute(store, "UPDATE jobs SET worker_pid = ?, worker_start = ? WHERE id = ?",
               (os.getpid(), jobs.process_start(os.getpid()), job_id))
    d.recover()
    assert jobs.get_job(job_id, store)["status"] == "running" and job_id in d.adopted
    assert not jobs.worker_alive(os.getpid(), "0")  # a reused pid has another start time


def test_worker_refuses_a_job_it_does_not_own(store):
    job_id = jobs.enqueue("playbook", {"playbook": "noop_wait"}, store=store)
    assert jobs.run_worker(job_id, 1) == 2  # still queued: not claimed by this attempt
    assert jobs.get_job(job_id, store)["status"] == "queued"


def test_emitter_numbers_events_across_attempts(store):
    job_id = jobs.enqueue("playbook", {}, store=store)
    jobs.Emitter(store, job_id)({"type": "a"})
    emit = jobs.Emitter(store, job_id)
    emit({"type": "b"})
    assert [(e["seq"], e["event"]["type"]) for e in jobs.events(job_id, 0, store)] == [(1, "a"), (2, "b")]
    assert [e["seq"] for e in jobs.events(job_id, 1, store)] == [2]


def test_argv_for_never_lets_a_value_become_an_option():
    argv = cli_bridge.argv_for(["create"], ["--help"], {"db": "postgres", "domain": "--x", "port": None}, ["ssl"])
    assert argv == ["create", "--db=postgres", "--domain=--x", "--ssl", "--", "--help"]

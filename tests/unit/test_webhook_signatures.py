"""Webhook authentication and routing (lxdctl.api.webhooks) on a real SQLite state store.

The job queue is replaced by a recorder here (no server runs in unit tests);
tests/integration/test_webhooks.py covers the real ``lxdctl serve``.
"""
import hashlib
import hmac
import json

import pytest

from lxdctl.api import jobs, webhooks
from lxdctl.collection import module_utils

SHA = "0123456789abcdef0123456789abcdef01234567"


class Headers(dict):
    def get(self, key, default=None):
        for k, v in self.items():
            if k.lower() == key.lower():
                return v
        return default


class Req:
    def __init__(self, store, body, headers):
        self.store = store
        self.raw_body = body
        self.headers = Headers(headers)


@pytest.fixture()
def store(tmp_path, monkeypatch):
    state = module_utils("_state")
    st = state.StateStore.open(url="sqlite:///%s" % (tmp_path / "state.db"), key_file=str(tmp_path / "state.key"))
    st.upsert_project("whapp", git_repository="https://git.example/acme/whapp.git", git_branch="main", status="running")
    st.upsert_project("other", git_repository="https://git.example/acme/other.git", git_branch="main", status="running")
    st.upsert_pipeline("whapp", "default", config={"file": ".lxdctl.yml", "branch": "main"},
                       triggers={"branch": "main", "github": "acme/whapp-gh", "gitlab": "group/whapp"})
    queued = []
    monkeypatch.setattr(jobs, "enqueue", lambda kind, payload, project=None, actor=None, store=None:
                        queued.append((kind, payload, project)) or len(queued))
    st.queued = queued
    yield st
    st.close()


def secret(store, name="whapp"):
    return store.get_or_create_secret(name, webhooks.SECRET_NAME, length=40)[0]


def github(store, body, key=None, event="push", delivery="del-1", signature=None):
    raw = json.dumps(body).encode()
    headers = {"X-GitHub-Event": event, "X-GitHub-Delivery": delivery, "Content-Type": "application/json"}
    if signature is None and key is not None:
        signature = "sha256=" + hmac.new(key.encode(), raw, hashlib.sha256).hexdigest()
    if signature is not None:
        headers["X-Hub-Signature-256"] = signature
    return webhooks._answered(webhooks.github)(Req(store, raw, headers))


def push(full_name="acme/whapp-gh", ref="refs/heads/main", after=SHA):
    return {"ref": ref, "after": after, "repository": {"full_name": full_name}}


def test_signed_push_queues_one_pipeline_run(store):
    answer = github(store, push(), secret(store))
    assert answer.status == 202 and answer.body["status"] == "queued" and answer.body["pipeline_run"] == 1
    assert store.queued == [("pipeline", {"project": "whapp", "run_id": store.list_pipeline_runs("whapp", "default")[0]["id"],
                                          "run": 1}, "whapp")]
    run = store.list_pipeline_runs("whapp", "default")[0]
    assert run["status"] == "queued" and run["artifacts"]["commit"] == SHA and run["artifacts"]["branch"] == "main"


def test_replayed_delivery_is_ignored(store):
    key = secret(store)
    assert github(store, push(), key).status == 202
    again = github(store, push(), key)
    assert again.status == 200 and again.body["status"] == "duplicate"
    assert len(store.queued) == 1 and len(store.list_pipeline_runs("whapp", "default")) == 1


def test_missing_signature_401(store):
    secret(store)
    answer = github(store, push())
    assert answer.status == 401 and "missing" in answer.body["error"]
    assert store.queued == []


@pytest.mark.parametrize("signature", ["sha256=" + "0" * 64, "sha1=abc", "sha256=zz", "garbage"])
def test_wrong_signature_401(store, signature):
    secret(store)
    assert github(store, push(), signature=signature).status == 401
    assert store.queued == []


def test_signature_of_another_body_or_key_401(store):
    key = secret(store)
    raw_other = json.dumps(push(ref="refs/heads/other")).encode()
    sig = "sha256=" + hmac.new(key.encode(), raw_other, hashlib.sha256).hexdigest()
    assert github(store, push(), signature=sig).status == 401
    other_key = secret(store, "other")
    assert github(store, push(), other_key).status == 401  # the other project's secret
    assert store.queued == []


def test_uses_constant_time_compare(store, monkeypatch):
    calls = []
    real = hmac.compare_digest
    monkeypatch.setattr(webhooks.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    github(store, push(), secret(store))
    assert calls


def test_unknown_repository_404(store):
    answer = github(store, push(full_name="nobody/nothing"), secret(store))
    assert answer.status == 404 and answer.body["error"] == "unknown repository"


def test_no_secret_yet_401(store):
    assert github(store, push(), "whatever").status == 401


def test_ping_answered(store):
    answer = github(store, {"zen": "Keep it simple.", "repository": {"full_name": "acme/whapp-gh"}}, secret(store),
                    event="ping", delivery="ping-1")
    assert answer.status == 200 and answer.body["status"] == "pong"
    assert store.queued == []


def test_other_branch_and_deletes_ignored(store):
    key = secret(store)
    answer = github(store, push(ref="refs/heads/feature"), key, delivery="a")
    assert answer.status == 200 and answer.body["status"] == "ignored"
    answer = github(store, push(after="0" * 40), key, delivery="b")
    assert answer.body["status"] == "ignored"
    answer = github(store, push(), key, event="issues", delivery="c")
    assert answer.body["status"] == "ignored"
    assert store.queued == []


def test_repository_url_matches_and_no_pipeline_means_deploy(store):
    key = secret(store, "other")
    body = {"ref": "refs/heads/main", "after": SHA,
            "repository": {"full_name": "acme/other", "clone_url": "https://git.example/acme/other.git"}}
    answer = github(store, body, key)
    assert answer.status == 202 and answer.body["deploy"] is True
    assert store.queued == [("cli", {"argv": ["deploy", "other", "--auto", "--branch", "main", "--commit", SHA]}, "other")]


def test_missing_delivery_400(store):
    assert github(store, push(), secret(store), delivery="").status == 400


def gitlab(store, body, token=None, uuid="gl-1"):
    raw = json.dumps(body).encode()
    headers = {"X-Gitlab-Event": "Push Hook", "X-Gitlab-Event-UUID": uuid, "Content-Type": "application/json"}
    if token is not None:
        headers["X-Gitlab-Token"] = token
    return webhooks._answered(webhooks.gitlab)(Req(store, raw, headers))


def gl_push(path="group/whapp"):
    return {"object_kind": "push", "ref": "refs/heads/main", "checkout_sha": SHA, "after": SHA,
            "project": {"path_with_namespace": path}}


def test_gitlab_token(store):
    key = secret(store)
    assert gitlab(store, gl_push()).status == 401
    assert gitlab(store, gl_push(), "wrong-token").status == 401
    assert gitlab(store, gl_push("group/unknown"), key).status == 404
    answer = gitlab(store, gl_push(), key)
    assert answer.status == 202 and answer.body["pipeline_run"] == 1
    assert gitlab(store, gl_push(), key).body["status"] == "duplicate"
    assert len(store.queued) == 1


def test_slug_of_urls():
    assert webhooks._slug_of("https://github.com/Acme/App.git") == "acme/app"
    assert webhooks._slug_of("git@github.com:acme/app.git") == "acme/app"
    assert webhooks._slug_of("/srv/git/app") == ""

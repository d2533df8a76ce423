"""Unit tests of reconcile: the derived-name rule read backwards, the info modules' shaping,
the CLI's attribution of changed tasks to projects, its report and exit codes, and the role's
declared inputs.  No services."""
import os

import pytest
import yaml
from click.testing import CliRunner

from ansible_collections.lxdctl.platform.plugins.module_utils import _daemon, _memcached
from ansible_collections.lxdctl.platform.plugins.module_utils._names import projects_named_by
from ansible_collections.lxdctl.platform.plugins.modules import (lxd_instance_info, memcached_instance_info,
                                                                 powerdns_record_info)
from lxdctl.commands import reconcile as cmd

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "roles", "reconcile")


@pytest.mark.parametrize("kind, name, expected", [
    ("container", "lxdctl-shop", ["shop"]),
    ("container", "lxdctl-shop-green", ["shop-green", "shop"]),
    ("container", "lxdctl-ci-shop-12", ["ci-shop-12", "shop"]),
    ("container", "it-shop", []),
    ("container", "lxdctl-", []),
    ("container", "lxdctl-admin", []),  # reserved: never a project
    ("sql", "p_my_shop", ["my-shop"]),
    ("sql", "p_my__shop", []),
    ("sql", "postgres", []),
    ("redis_user", "p-shop", ["shop"]),
    ("redis_user", "lxdctl_admin", []),
    ("site", "shop", ["shop"]),
    ("site", "Not_A_Name", []),
    ("dns", "shop.lxdctl.test", ["shop"]),
    ("dns", "lxdctl.test", []),  # the zone apex: lxdctl is reserved
])
def test_projects_named_by_inverts_the_derived_names(kind, name, expected):
    assert projects_named_by(kind, name) == expected


def test_projects_named_by_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match="kind"):
        projects_named_by("volume", "x")


def test_an_instance_label_comes_first():
    record = {"name": "lxdctl-a-green", "status": "Running", "config": {"user.lxdctl.project": "a"}}
    assert lxd_instance_info.describe(record) == {
        "name": "lxdctl-a-green", "status": "Running", "project_label": "a", "projects": ["a", "a-green"]}
    unlabelled = lxd_instance_info.describe({"name": "lxdctl-b", "status": "Stopped", "config": {}})
    assert unlabelled["projects"] == ["b"] and unlabelled["project_label"] is None


def test_zone_records_skip_soa_and_ns_and_only_first_level_names_map_to_projects():
    zone = {"rrsets": [
        {"name": "lxdctl.test.", "type": "SOA", "records": [{"content": "x"}]},
        {"name": "lxdctl.test.", "type": "NS", "records": [{"content": "ns1.lxdctl.test."}]},
        {"name": "Shop.lxdctl.test.", "type": "A", "ttl": 300,
         "records": [{"content": "10.77.0.1"}, {"content": "10.0.0.9", "disabled": True}]},
        {"name": "www.shop.lxdctl.test.", "type": "CNAME", "ttl": 60, "records": [{"content": "shop.lxdctl.test."}]},
    ]}
    assert powerdns_record_info.zone_records("lxdctl.test", zone) == [
        {"zone": "lxdctl.test", "name": "shop.lxdctl.test", "type": "A", "ttl": 300, "records": ["10.77.0.1"],
         "projects": ["shop"]},
        {"zone": "lxdctl.test", "name": "www.shop.lxdctl.test", "type": "CNAME", "ttl": 60,
         "records": ["shop.lxdctl.test."], "projects": []},
    ]


def test_memcached_instances_come_from_the_registry_live_pidfiles_and_units(tmp_path, monkeypatch):
    run_dir, unit_dir = tmp_path / "run", tmp_path / "units"
    run_dir.mkdir()
    unit_dir.mkdir()
    with _memcached.Registry(str(run_dir)) as registry:
        registry.data = {"shop": {"port": 21000, "listen": "10.77.0.1", "memory_mb": 64}}
        registry.save()
    (run_dir / "shop.pid").write_text("101\n")
    (run_dir / "half-made.pid").write_text("102\n")  # started, killed before the registry write
    (run_dir / "stale.pid").write_text("103\n")  # nothing runs, nothing recorded: not an instance
    (unit_dir / "lxdctl-memcached-unit-only.service").write_text("[Service]\n")
    (unit_dir / "lxdctl-postgres.service").write_text("[Service]\n")
    alive = {101, 102}
    monkeypatch.setattr(_daemon, "pid_alive", lambda pid: pid in alive)
    assert _memcached.list_instances(str(run_dir), str(unit_dir), system="none") == [
        {"name": "half-made", "port": None, "listen": None, "memory_mb": None, "running": True, "registered": False},
        {"name": "shop", "port": 21000, "listen": "10.77.0.1", "memory_mb": 64, "running": True, "registered": True},
    ]
    # Under systemd the unit files count too (their status comes from systemctl).
    monkeypatch.setattr(_daemon, "unit_active", lambda unit: unit == "lxdctl-memcached-shop.service")
    listed = _memcached.list_instances(str(run_dir), str(unit_dir), system="systemd")
    assert [(i["name"], i["running"]) for i in listed] == [("shop", True), ("unit-only", False)]
    # A host without the run directory has none, and reading never creates it.
    assert _memcached.list_instances(str(tmp_path / "absent"), str(unit_dir), system="none") == []
    assert not (tmp_path / "absent").exists()


@pytest.mark.parametrize("name, projects", [("shop", ["shop"]), ("Not_A_Name", []), ("admin", [])])
def test_a_memcached_instance_belongs_to_the_project_it_is_named(name, projects):
    described = memcached_instance_info.describe({"name": name, "port": None})
    assert described == {"name": name, "port": None, "projects": projects}


def test_the_role_lists_and_prunes_memcached_instances():
    with open(os.path.join(ROLE, "tasks", "orphans.yml")) as handle:
        orphans = handle.read()
    with open(os.path.join(ROLE, "tasks", "prune.yml")) as handle:
        prune = yaml.safe_load(handle)
    assert "lxdctl.platform.memcached_instance_info" in orphans
    assert "[memcached_instance, \"{{ _reconcile_memcached.instances }}\"]" in orphans
    stop = [task for task in prune if "lxdctl.platform.memcached_instance" in task]
    assert len(stop) == 1 and stop[0]["lxdctl.platform.memcached_instance"]["state"] == "absent"
    assert "'memcached_instance'" in stop[0]["loop"]


# --- the CLI's reading of the run's events ------------------------------------------------
def ok(task, action, res, role="project", uuid=None, kind="runner_on_ok", stdout=""):
    return {"event": kind, "stdout": stdout,
            "event_data": {"task": task, "resolved_action": action, "role": role, "res": res,
                           "task_uuid": uuid or task}}


def marker(name):
    return ok("Reconcile project %s" % name, "ansible.builtin.set_fact",
              {"ansible_facts": {"_reconcile_current_project": name}, "changed": False}, role="reconcile")


CENSORED = {"censored": "the output has been hidden due to the fact that 'no_log: true' was specified"}


def test_changed_tasks_are_attributed_to_the_project_being_converged():
    rec = cmd.DriftRecorder(enabled=False)
    events = [
        marker("a"),
        ok("Point the name", "lxdctl.platform.powerdns_record",
           {"changed": True, "diff": {"before": {"records": []}, "after": {"records": ["10.77.0.1"]}}}),
        ok("Read the state", "lxdctl.platform.lxdctl_info", {"changed": False}),
        # no_log: the result is censored, only the printed line says "changed"
        ok("Create the Redis ACL user", "lxdctl.platform.redis_acl_user", CENSORED, stdout="changed: [localhost]"),
        ok("Create the PostgreSQL database", "lxdctl.platform.postgres_tenant", CENSORED, stdout="ok: [localhost]"),
        marker("b"),
        ok("Loop", "lxdctl.platform.lxdctl_state", {"changed": True}, kind="runner_item_on_ok", uuid="u1"),
        ok("Loop", "lxdctl.platform.lxdctl_state", {"changed": True}, kind="runner_item_on_ok", uuid="u1"),
        ok("Loop", "lxdctl.platform.lxdctl_state", {"changed": True}, uuid="u1"),
        # the role's own tasks (orphans, prune) are not a project's drift
        ok("Remove the orphaned sites", "lxdctl.platform.nginx_site", {"changed": True}, role="reconcile"),
    ]
    for event in events:
        rec.handle(event)
    rec.close()
    assert rec.drift_of() == {
        "a": [
            {"task": "Point the name", "module": "powerdns_record", "resource": "dns",
             "diff": {"before": {"records": []}, "after": {"records": ["10.77.0.1"]}}},
            {"task": "Create the Redis ACL user", "module": "redis_acl_user", "resource": "redis"},
        ],
        "b": [{"task": "Loop", "module": "lxdctl_state", "resource": "state"}],
    }


def test_censored_results_never_carry_a_diff():
    item = cmd.drift_item({"task": "t", "resolved_action": "lxdctl.platform.lxd_file"},
                          dict(CENSORED, diff={"before": "SECRET", "after": "x"}))
    assert "diff" not in item and item["resource"] == "env_file"


STATS = {"reconcile": {
    "projects": [{"name": "a", "status": "running", "action": "create"},
                 {"name": "b", "status": "deleting", "action": "delete"}],
    "orphans": [{"kind": "site", "name": "gone", "project": "gone"}],
    "pruned": False,
}}


def test_a_dry_run_with_drift_is_not_in_sync():
    report = cmd.build_report(STATS, {"a": [{"task": "t", "module": "nginx_site", "resource": "site"}]}, True)
    assert report["dry_run"] and report["drift_found"] and not report["in_sync"]
    assert [(p["name"], p["in_sync"], p["repaired"]) for p in report["projects"]] == [("a", False, False),
                                                                                   ("b", True, False)]
    assert report["orphans"] == [{"kind": "site", "name": "gone", "project": "gone", "pruned": False}]


def test_a_repair_is_in_sync_only_when_no_orphan_is_left():
    drift = {"a": [{"task": "t", "module": "nginx_site", "resource": "site"}]}
    kept = cmd.build_report(STATS, drift, False)
    assert kept["projects"][0]["repaired"] and not kept["in_sync"]
    pruned = cmd.build_report(dict(STATS, reconcile=dict(STATS["reconcile"], pruned=True)), drift, False)
    assert pruned["in_sync"] and pruned["orphans"][0]["pruned"]
    nothing = cmd.build_report({"reconcile": {"projects": STATS["reconcile"]["projects"], "orphans": []}}, {}, True)
    assert nothing["in_sync"] and not nothing["drift_found"]


def test_a_dry_run_never_claims_a_prune():
    report = cmd.build_report(dict(STATS, reconcile=dict(STATS["reconcile"], pruned=True)), {}, True)
    assert not report["orphans"][0]["pruned"] and not report["in_sync"]


def test_exit_codes_are_documented_and_distinct_from_bad_usage():
    result = CliRunner().invoke(cmd.reconcile, ["--help"])
    assert result.exit_code == 0
    for line in ("0  in sync", "1  error", "2  bad usage", "3  drift found"):
        assert line in result.output
    assert cmd.EXIT_DRIFT not in (0, 1, 2)


def test_a_bad_name_is_refused_before_any_playbook(monkeypatch):
    monkeypatch.setattr("lxdctl.runner.run_playbook", lambda *a, **k: pytest.fail("a playbook ran"))
    result = CliRunner().invoke(cmd.reconcile, ["--dry-run", "ok-name", "Bad_Name"])
    assert result.exit_code == 2
    assert "lowercase letters" in result.output


def test_the_role_declares_exactly_its_defaults():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as handle:
        defaults = yaml.safe_load(handle)
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    assert set(defaults) == set(options)
    for name, spec in options.items():
        assert spec["default"] == defaults[name]

"""Verify the converged deploy: the app runs as a service in the container, nginx serves it."""
import json
import time
import urllib.request

import testinfra

NAME = "it-dep-mol"
app = testinfra.get_host("lxc://lxdctl-%s" % NAME)
green = testinfra.get_host("lxc://lxdctl-%s-green" % NAME)
host = testinfra.get_host("local://")


def get(path="/"):
    req = urllib.request.Request("http://10.77.0.1" + path, headers={"Host": "%s.lxdctl.test" % NAME})
    with urllib.request.urlopen(req, timeout=5) as resp:
        return resp.read().decode().strip()


def test_first_release_serves_again_after_the_rollback():
    assert get() == "python-hello release v1"
    assert json.loads(get("/db"))["reachable"]


def test_the_app_is_a_non_root_systemd_service():
    unit = app.service("lxdctl-app@blue")
    assert unit.is_running and unit.is_enabled
    show = app.check_output("systemctl show lxdctl-app@blue -p User -p Restart")
    assert "User=app" in show and "Restart=on-failure" in show
    assert app.file("/srv/app/slots/blue").linked_to == "/srv/app/releases/v1"


def test_both_releases_are_kept_and_the_green_container_is_stopped_but_ready():
    assert app.file("/srv/app/releases/v1/.lxdctl/start").exists
    assert green.file("/srv/app/releases/v2/.lxdctl/start").exists
    deadline = time.monotonic() + 15  # the old release stops after the drain delay
    while green.service("lxdctl-app@blue").is_running and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not green.service("lxdctl-app@blue").is_running
    assert green.check_output("systemctl is-system-running || true") in ("running", "degraded")


def test_the_deployments_table():
    rows = json.loads(host.check_output("lxdctl deployments %s --output json" % NAME))
    assert [(r["version"], r["deploy_type"], r["status"]) for r in rows] == [
        ("v1", "rollback", "success"), ("v2", "blue_green", "rolled_back"), ("v1", "standard", "success")]

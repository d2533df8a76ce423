"""Verify the converged project: inside its container (lxc:// backend) and on the host."""
import json

import testinfra

NAME = "it-proj-mol"
app = testinfra.get_host("lxc://lxdctl-%s" % NAME)
host = testinfra.get_host("local://")


def test_container_runs_systemd_with_the_app_user():
    assert app.user("app").exists
    assert app.file("/etc/hostname").content_string.strip() == "lxdctl-%s" % NAME


def test_env_file_is_private_and_complete():
    env = app.file("/etc/lxdctl/app.env")
    assert env.exists and env.user == "app" and env.group == "app" and env.mode == 0o600
    values = app.run("sh -c 'set -a; . /etc/lxdctl/app.env; printf \"%s|%s|%s\" \"$PORT\" \"$GREETING\" \"$REDIS_KEY_PREFIX\"'")
    assert values.stdout == "8000|hello from molecule|%s:" % NAME
    assert app.run("sh -c '. /etc/lxdctl/app.env; case \"$DATABASE_URL\" in postgresql://p_it_proj_mol:*@10.77.0.1:5432/p_it_proj_mol) echo ok;; esac'").stdout.strip() == "ok"


def test_container_reaches_the_platform_services():
    for port in (5432, 6379):
        assert app.run("timeout 5 bash -c '</dev/tcp/10.77.0.1/%d'" % port).rc == 0


def test_dns_site_and_state_on_the_host():
    assert host.run("dig +short @127.0.0.1 -p 5300 %s.lxdctl.test A" % NAME).stdout.split() == ["10.77.0.1"]
    assert host.file("/etc/nginx/lxdctl-sites/%s.conf" % NAME).contains("%s.lxdctl.test" % NAME)
    listing = json.loads(host.check_output("lxdctl list --output json"))
    row = next(p for p in listing if p["name"] == NAME)
    assert row["status"] == "running" and row["db"] == "postgres" and row["cache"] == "redis"

"""``lxdctl init`` option validation and the extra vars it hands to playbooks/bootstrap.yml."""
import pytest
from click.testing import CliRunner

from lxdctl.commands import init as init_cmd
from lxdctl.main import cli


@pytest.fixture
def calls(monkeypatch, tmp_path):
    """Capture the playbook call instead of running it (unit tests run no services)."""
    seen = []
    monkeypatch.setenv("LXDCTL_CONFIG", str(tmp_path / "platform.json"))

    def fake_execute(playbook, extravars, dry_run=False, verbose=0, **kwargs):
        seen.append({"playbook": playbook, "extravars": extravars, "dry_run": dry_run, "verbose": verbose})

    monkeypatch.setattr(init_cmd, "execute", fake_execute)
    return seen


def run(*args):
    return CliRunner().invoke(cli, ["init"] + list(args))


def test_defaults_pass_no_settings(calls):
    result = run("--yes")
    assert result.exit_code == 0, result.output
    assert calls == [{"playbook": "bootstrap", "extravars": {}, "dry_run": False, "verbose": 0}]


def test_a_plain_rerun_keeps_the_options_of_the_last_run(calls):
    assert run("--yes", "--no-nat", "--with-pebble").exit_code == 0
    assert run("--yes").exit_code == 0
    assert run("--yes", "--dns-port", "5301").exit_code == 0
    assert calls[1]["extravars"] == {"platform_lxd_network_nat": False, "platform_pebble_enabled": True}
    assert calls[2]["extravars"] == {"platform_lxd_network_nat": False, "platform_pebble_enabled": True,
                                     "platform_dns_port": 5301}


def test_a_dry_run_remembers_nothing(calls):
    assert run("--yes", "--no-nat", "--dry-run").exit_code == 0
    assert run("--yes").exit_code == 0
    assert calls[1]["extravars"] == {}


def test_options_map_to_role_variables(calls):
    result = run("--yes", "--no-nat", "--with-pebble", "--subnet", "10.88.0.1/24", "--dns-port", "5353",
                 "--dns-address", "127.0.0.2", "--ipv6", "fd42:77::1/64", "--pool-driver", "dir",
                 "--image-server", "https://images.example.com", "--mirror", "http://deb.example.com/debian",
                 "--runtimes", "python,go", "--public-address", "192.0.2.10", "-v", "--dry-run")
    assert result.exit_code == 0, result.output
    assert calls[0]["extravars"] == {
        "platform_lxd_network_nat": False,
        "platform_pebble_enabled": True,
        "platform_lxd_network_address": "10.88.0.1/24",
        "platform_dns_port": 5353,
        "platform_dns_address": "127.0.0.2",
        "platform_lxd_network_ipv6": "fd42:77::1/64",
        "platform_lxd_pool_driver": "dir",
        "platform_image_server": "https://images.example.com",
        "platform_images_mirror": "http://deb.example.com/debian",
        "platform_images_runtimes": ["python", "go"],
        "platform_public_address": "192.0.2.10",
    }
    assert calls[0]["dry_run"] is True and calls[0]["verbose"] == 1


def test_runtimes_none_builds_only_the_base_image(calls):
    assert run("--yes", "--runtimes", "none").exit_code == 0
    assert calls[0]["extravars"] == {"platform_images_runtimes": []}


@pytest.mark.parametrize("args, option, words", [
    (["--subnet", "10.77.0.0/24"], "--subnet", "network or broadcast address"),
    (["--subnet", "300.1.2.3/24"], "--subnet", "IPv4 address with a prefix"),
    (["--subnet", "10.77.0.1"], "--subnet", "prefix length"),
    (["--subnet", "10.77.0.1/31"], "--subnet", "prefix length from 8 to 30"),
    (["--subnet", "8.8.8.1/24"], "--subnet", "private address"),
    (["--dns-port", "70000"], "--dns-port", "1 to 65535"),
    (["--dns-port", "abc"], "--dns-port", "whole number"),
    (["--dns-address", "localhost"], "--dns-address", "IP address"),
    (["--ipv6", "10.0.0.1/24"], "--ipv6", "IPv6 address"),
    (["--runtimes", "python,ruby"], "--runtimes", "unknown: ruby"),
    (["--mirror", "ftp://x"], "--mirror", "http:// or https://"),
    (["--image-server", "https://a b"], "--image-server", "http:// or https://"),
    (["--pool-driver", "zfs"], "--pool-driver", "zfs"),
])
def test_bad_input_names_the_option_and_the_rule(calls, args, option, words):
    result = run("--yes", *args)
    assert result.exit_code == 2
    assert option in result.output and words in result.output, result.output
    assert calls == []  # nothing ran


def test_refuses_without_yes_when_not_a_terminal(calls):
    result = run()
    assert result.exit_code != 0
    assert "--yes" in result.output
    assert calls == []


def test_help_lists_the_main_settings():
    result = CliRunner().invoke(cli, ["init", "--help"])
    assert result.exit_code == 0
    for option in ("--subnet", "--nat / --no-nat", "--ipv6", "--dns-port", "--dns-address", "--with-pebble",
                   "--pool-driver", "--image-server", "--runtimes", "--yes", "--dry-run", "--verbose"):
        assert option in result.output

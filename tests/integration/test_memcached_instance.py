"""memcached_instance: one memcached per project, checked over a raw TCP socket and /proc."""
import json
import os
import socket

from tests.integration.data_support import memcached, memcached_stats, port_open, run_module

NAME = "it-data-mc-a"


def registry(cfg):
    path = os.path.join(cfg["memcached"]["run_dir"], "registry.json")
    try:
        with open(path) as handle:
            return json.load(handle)["instances"]
    except (IOError, OSError):
        return {}


def process_user(pid):
    with open("/proc/%s/status" % pid) as handle:
        for line in handle:
            if line.startswith("Uid:"):
                uid = int(line.split()[1])
    import pwd

    return pwd.getpwuid(uid).pw_name


def test_memcached_instance_lifecycle(platform_config):
    cfg = platform_config
    listen = cfg["memcached"]["listen"]
    low, high = cfg["memcached"]["port_range"]
    run_module("memcached_instance", {"name": NAME, "state": "absent"})
    try:
        check = run_module("memcached_instance", {"name": NAME}, check=True, diff=True)
        assert not check.failed and check.changed, check
        assert NAME not in registry(cfg)
        assert not port_open(listen, check["port"])

        created = run_module("memcached_instance", {"name": NAME}, diff=True)
        assert not created.failed and created.changed, created
        port = created["port"]
        assert low <= port <= high
        assert created["servers"] == "%s:%d" % (listen, port)
        assert registry(cfg)[NAME]["port"] == port
        assert memcached(listen, port, b"set it-data-k 0 0 5\r\nhello\r\n", until=b"\r\n") == "STORED\r\n"
        assert memcached(listen, port, b"get it-data-k\r\n") == "VALUE it-data-k 0 5\r\nhello\r\nEND\r\n"
        stats = memcached_stats(listen, port)
        assert stats["limit_maxbytes"] == str(64 * 1024 * 1024)
        assert process_user(stats["pid"]) == "memcache"
        pid = stats["pid"]

        again = run_module("memcached_instance", {"name": NAME})
        assert not again.failed and not again.changed, again
        assert again["port"] == port
        assert memcached_stats(listen, port)["pid"] == pid

        modified = run_module("memcached_instance", {"name": NAME, "memory_mb": 32}, diff=True)
        assert not modified.failed and modified.changed, modified
        assert modified["port"] == port
        assert modified["diff"]["before"]["memory_mb"] == 64 and modified["diff"]["after"]["memory_mb"] == 32
        stats = memcached_stats(listen, port)
        assert stats["limit_maxbytes"] == str(32 * 1024 * 1024) and stats["pid"] != pid
        again = run_module("memcached_instance", {"name": NAME, "memory_mb": 32})
        assert not again.failed and not again.changed, again

        check_absent = run_module("memcached_instance", {"name": NAME, "state": "absent"}, check=True)
        assert check_absent.changed and port_open(listen, port)

        removed = run_module("memcached_instance", {"name": NAME, "state": "absent"}, diff=True)
        assert not removed.failed and removed.changed, removed
        assert not port_open(listen, port)
        assert NAME not in registry(cfg)

        again = run_module("memcached_instance", {"name": NAME, "state": "absent"})
        assert not again.failed and not again.changed, again
    finally:
        run_module("memcached_instance", {"name": NAME, "state": "absent"})


def test_memcached_ports_differ_per_project(platform_config):
    names = ["it-data-mc-b", "it-data-mc-c"]
    listen = platform_config["memcached"]["listen"]
    try:
        ports = []
        for name in names:
            result = run_module("memcached_instance", {"name": name, "memory_mb": 16})
            assert not result.failed, result
            ports.append(result["port"])
        assert ports[0] != ports[1]
        memcached(listen, ports[0], b"set it-data-only-b 0 0 1\r\nb\r\n", until=b"\r\n")
        assert memcached(listen, ports[1], b"get it-data-only-b\r\n") == "END\r\n"
    finally:
        for name in names:
            run_module("memcached_instance", {"name": name, "state": "absent"})


def test_memcached_port_taken_by_another_process(platform_config):
    listen = platform_config["memcached"]["listen"]
    squatter = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    squatter.bind((listen, 0))
    squatter.listen(1)
    try:
        port = squatter.getsockname()[1]
        result = run_module("memcached_instance", {"name": "it-data-mc-e", "port": port})
        assert result.failed and "in use by another process" in result["msg"], result
        assert "it-data-mc-e" not in registry(platform_config)
    finally:
        squatter.close()
        run_module("memcached_instance", {"name": "it-data-mc-e", "state": "absent"})


def test_memcached_bad_input(platform_config):
    for bad in ({"name": "It-Data-Mc"}, {"name": "it-data-mc/../x"}, {"name": "it-data-mc-d", "memory_mb": 0},
                {"name": "it-data-mc-d", "listen": "10.77.0.1; rm -rf /"}):
        result = run_module("memcached_instance", bad)
        assert result.failed, result
    assert not [name for name in registry(platform_config) if name.startswith("it-data-mc-d")]

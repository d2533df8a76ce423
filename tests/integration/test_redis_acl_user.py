"""redis_acl_user against the platform's Redis, checked with redis-cli (tenant over the bridge
address) and by reading the aclfile that ACL SAVE writes."""
from tests.integration.data_support import assert_no_secret, redis_admin, redis_tenant, run_module

USER = "it-data-rd-a"
PREFIX = "it-data-rd-a:"
PW1 = "it-Data rd1 'quote' $HOME;--"
PW2 = "it-data-rd2-rotated"


def args(**extra):
    base = {"name": USER, "password": PW1, "key_prefix": PREFIX}
    base.update(extra)
    return base


def aclfile_lines(cfg):
    with open(cfg["redis"]["aclfile"]) as handle:
        return [line for line in handle.read().splitlines() if line.startswith("user %s " % USER)]


def user_exists(cfg):
    return USER in redis_admin(cfg, "ACL", "USERS").split()


def test_redis_acl_user_lifecycle(platform_config):
    cfg = platform_config
    run_module("redis_acl_user", {"name": USER, "key_prefix": PREFIX, "state": "absent", "remove_keys": True})
    try:
        check = run_module("redis_acl_user", args(), check=True, diff=True)
        assert not check.failed and check.changed, check
        assert check["commands"][0].startswith("ACL SETUSER %s reset on #********" % USER)
        assert not user_exists(cfg)
        assert_no_secret(check, PW1)

        created = run_module("redis_acl_user", args(), diff=True)
        assert not created.failed and created.changed, created
        assert created["user"] == USER and created["key_prefix"] == PREFIX
        assert created["host"] == cfg["redis"]["tenant_host"] and created["port"] == cfg["redis"]["port"]
        assert created["commands"][-1] == "ACL SAVE"
        assert_no_secret(created, PW1)
        assert user_exists(cfg)
        saved = aclfile_lines(cfg)
        assert len(saved) == 1 and "~%s*" % PREFIX in saved[0] and "-@dangerous" in saved[0] and "-scan" in saved[0]
        assert PW1 not in saved[0]

        assert redis_tenant(cfg, USER, PW1, "SET", PREFIX + "k", "v") == "OK"
        assert redis_tenant(cfg, USER, PW1, "GET", PREFIX + "k") == "v"
        assert "NOPERM" in redis_tenant(cfg, USER, PW1, "GET", "other:k")
        for command in (["KEYS", "*"], ["SCAN", "0"], ["FLUSHALL"], ["FLUSHDB"], ["RANDOMKEY"], ["CONFIG", "GET", "*"],
                        ["ACL", "LIST"], ["DBSIZE"]):
            assert "NOPERM" in redis_tenant(cfg, USER, PW1, *command), command
        assert redis_tenant(cfg, USER, PW1, "PUBLISH", PREFIX + "chan", "x") == "0"
        assert "NOPERM" in redis_tenant(cfg, USER, PW1, "PUBLISH", "other:chan", "x")

        again = run_module("redis_acl_user", args())
        assert not again.failed and not again.changed, again
        same = run_module("redis_acl_user", args(rotate_password=True))
        assert not same.failed and not same.changed, same
        kept = run_module("redis_acl_user", args(password=PW2))
        assert not kept.failed and not kept.changed, kept

        # drift: a rule added by hand is taken back, the password kept
        redis_admin(cfg, "ACL", "SETUSER", USER, "+keys")
        repaired = run_module("redis_acl_user", args(password=PW2))
        assert not repaired.failed and repaired.changed, repaired
        assert "NOPERM" in redis_tenant(cfg, USER, PW1, "KEYS", "*")

        rotated = run_module("redis_acl_user", args(password=PW2, rotate_password=True), diff=True)
        assert not rotated.failed and rotated.changed and rotated["password_set"], rotated
        assert_no_secret(rotated, PW1, PW2)
        assert redis_tenant(cfg, USER, PW2, "GET", PREFIX + "k") == "v"
        assert "WRONGPASS" in redis_tenant(cfg, USER, PW1, "GET", PREFIX + "k")
        again = run_module("redis_acl_user", args(password=PW2, rotate_password=True))
        assert not again.failed and not again.changed, again

        redis_admin(cfg, "SET", "it-data-rd-b:keep", "1")
        check_absent = run_module("redis_acl_user", {"name": USER, "key_prefix": PREFIX, "state": "absent",
                                                     "remove_keys": True}, check=True)
        assert check_absent.changed and check_absent["keys_removed"] == 1
        assert user_exists(cfg) and redis_admin(cfg, "EXISTS", PREFIX + "k") == "1"

        removed = run_module("redis_acl_user", {"name": USER, "key_prefix": PREFIX, "state": "absent",
                                                "remove_keys": True}, diff=True)
        assert not removed.failed and removed.changed, removed
        assert removed["keys_removed"] == 1
        assert not user_exists(cfg) and aclfile_lines(cfg) == []
        assert redis_admin(cfg, "EXISTS", PREFIX + "k") == "0"
        assert redis_admin(cfg, "EXISTS", "it-data-rd-b:keep") == "1"  # other prefixes untouched

        again = run_module("redis_acl_user", {"name": USER, "key_prefix": PREFIX, "state": "absent", "remove_keys": True})
        assert not again.failed and not again.changed, again
    finally:
        run_module("redis_acl_user", {"name": USER, "key_prefix": PREFIX, "state": "absent", "remove_keys": True})
        redis_admin(cfg, "DEL", "it-data-rd-b:keep")


def test_redis_bad_input_writes_nothing(platform_config):
    for bad in ({"name": "it-data-rd-b", "key_prefix": "*"}, {"name": "it-data-rd-b", "key_prefix": "it:data:"},
                {"name": "it-data-rd-b;FLUSHALL"}, {"name": "IT-DATA-RD-B"}, {"name": "it-data-rd-" + "b" * 60}):
        result = run_module("redis_acl_user", dict(bad, password=PW1))
        assert result.failed, result
        assert_no_secret(result, PW1)
    users = redis_admin(platform_config, "ACL", "USERS").split()
    assert not [user for user in users if user.lower().startswith("it-data-rd-b")]

"""The single name, domain and value rules (module_utils/_names.py)."""
import pytest

from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import ValidationError


@pytest.mark.parametrize("name", ["a", "myapp", "my-app", "app2", "a" * 32, "x-1-y"])
def test_valid_project_names(name):
    assert _names.project_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "MyApp", "1app", "-app", "app-", "my--app", "my_app", "a;rm -rf /", "../etc", "app/x",
     "a" * 33, "app$(id)", "app\n", "café"],
)
def test_invalid_project_names_name_the_field_and_rule(name):
    with pytest.raises(ValidationError) as err:
        _names.project_name(name)
    assert err.value.field == "name"
    assert "lowercase letters" in err.value.rule


@pytest.mark.parametrize("name", sorted(_names.RESERVED_NAMES))
def test_reserved_names_are_refused(name):
    with pytest.raises(ValidationError, match="reserved"):
        _names.project_name(name)


def test_domain_is_normalised():
    assert _names.domain("App.Example.COM.") == "app.example.com"
    assert _names.zone_name("example.com") == "example.com."


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("a." + "b" * 64 + ".com", "longer than 63"),
        (".".join(["abcdefghi"] * 26), "at most 253"),
        ("localhost", "two or more labels"),
        ("bad_label.example.com", "two or more labels"),
        ("x.example.com;", "two or more labels"),
        ("x.example.com\nevil", "two or more labels"),
    ],
)
def test_bad_domains(value, fragment):
    with pytest.raises(ValidationError) as err:
        _names.domain(value)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    "rtype, content, expected",
    [
        ("A", "10.0.0.1", "10.0.0.1"),
        ("AAAA", "2001:db8::1", "2001:db8::1"),
        ("CNAME", "Target.Example.com", "target.example.com."),
        ("MX", "mail.example.com.", "mail.example.com."),
        ("TXT", "v=spf1 -all", '"v=spf1 -all"'),
        ("TXT", '"quoted"', '"quoted"'),
    ],
)
def test_record_content_canonical(rtype, content, expected):
    assert _names.record_content(rtype, content) == expected


@pytest.mark.parametrize(
    "rtype, content",
    [("A", "300.1.1.1"), ("A", "::1"), ("AAAA", "10.0.0.1"), ("CNAME", "not a name"),
     ("TXT", "line\nbreak"), ("TXT", 'a"b'), ("TXT", "x" * 256), ("SRV", "x"), ("A", "")],
)
def test_record_content_rejects_invalid(rtype, content):
    with pytest.raises(ValidationError):
        _names.record_content(rtype, content)


@pytest.mark.parametrize("value", ["8080", 1, 65535])
def test_port_ok(value):
    assert _names.port(value) == int(value)


@pytest.mark.parametrize("value", ["0", 65536, "80a", "", None, True, " 80"])
def test_port_rejected(value):
    with pytest.raises(ValidationError, match="1 to 65535"):
        _names.port(value)


@pytest.mark.parametrize("value", ["x{y", "a;b", "a\nb", "$x", "a'b"])
def test_safe_text_blocks_config_injection(value):
    with pytest.raises(ValidationError):
        _names.safe_text(value, "server_name")


def test_derived_names():
    assert _names.container_name("my-app") == "lxdctl-my-app"
    assert _names.sql_identifier("my-app") == "p_my_app"
    assert _names.redis_user("my-app") == "p-my-app"
    assert _names.redis_prefix("my-app") == "my-app:"


def test_argspec_callables_raise_value_error_with_rule():
    with pytest.raises(ValueError, match="lowercase letters"):
        _names.argspec_project_name("Bad Name")

"""The pipeline file (.lxdctl.yml): format, variables, errors with line and column, unknown keys."""
import pytest

from lxdctl.pipelines import spec

FULL = """\
timeout: 120
limits: {cpu: 2, memory: 512MiB, processes: 128}
variables: {NODE_ENV: test}
notify:
  slack: http://127.0.0.1:9/slack
  discord: https://discord.example/api/webhooks/1
build:
  script:
    - npm install
    - npm run build
  artifacts: [dist/, build/]
test:
  script: [npm test, npm run lint]
  coverage: coverage/
  timeout: 30
deploy:
  environment:
    name: production
    url: https://$PROJECT.$DOMAIN
verify:
"""


def test_full_file():
    parsed = spec.parse(FULL)
    assert parsed["timeout"] == 120
    assert parsed["limits"] == {"cpu": 2, "memory": "512MiB", "processes": 128}
    assert parsed["variables"] == {"NODE_ENV": "test"}
    assert parsed["notify"]["slack"] == "http://127.0.0.1:9/slack"
    assert list(parsed["stages"]) == ["build", "test", "deploy", "verify"]
    assert parsed["stages"]["build"]["script"] == ["npm install", "npm run build"]
    assert parsed["stages"]["build"]["artifacts"] == ["dist/", "build/"]
    assert parsed["stages"]["test"]["coverage"] == ["coverage/"]
    assert parsed["stages"]["test"]["timeout"] == 30
    assert parsed["stages"]["deploy"]["environment"] == {"name": "production", "url": "https://$PROJECT.$DOMAIN"}
    assert parsed["stages"]["verify"]["script"] == []


def test_defaults_and_order():
    parsed = spec.parse("test:\n  script: [pytest]\nbuild:\n  script: make\n")
    assert parsed["timeout"] == spec.DEFAULT_TIMEOUT
    assert parsed["limits"] == spec.DEFAULT_LIMITS
    assert parsed["stages"]["build"]["script"] == ["make"]  # a single string is one line
    assert [s for s in spec.STAGES if s in parsed["stages"]] == ["build", "test"]


def test_variables_substituted_literally():
    values = {"PROJECT": "myapp", "BRANCH": "main", "DOMAIN": "example.com", "COMMIT": "abc123"}
    assert spec.substitute("https://$PROJECT.$DOMAIN/${BRANCH}@$COMMIT", values) == \
        "https://myapp.example.com/main@abc123"
    # other variables, longer names and shell syntax are left for the container's own shell
    assert spec.substitute("$HOME $PROJECTS ${PATH} $(id) `x` $BRANCH_X", values) == "$HOME $PROJECTS ${PATH} $(id) `x` $BRANCH_X"
    # values are inserted as text, never evaluated again
    assert spec.substitute("$PROJECT", {"PROJECT": "$BRANCH"}) == "$BRANCH"


def test_base_domain():
    assert spec.base_domain("myapp", "myapp.example.com") == "example.com"
    assert spec.base_domain("myapp", "shop.example.com") == "shop.example.com"
    assert spec.base_domain("myapp", None) == ""


@pytest.mark.parametrize("text, line, column, words", [
    ("test:\n  script: [a, b\n", 3, 1, "malformed YAML"),
    ("test:\n  script:\n    - ok\n   bad: [\n", 4, 4, "malformed YAML"),
    ("build:\n\tscript: x\n", 2, 1, "malformed YAML"),
    ("test: {script: 'x'\n", 2, 1, "malformed YAML"),
])
def test_malformed_yaml_has_line_and_column(text, line, column, words):
    with pytest.raises(spec.SpecError) as info:
        spec.parse(text)
    assert (info.value.line, info.value.column) == (line, column)
    assert words in str(info.value)
    assert "line %d, column %d" % (line, column) in str(info.value)


def test_unknown_stage_key_names_key_and_allowed():
    with pytest.raises(spec.SpecError) as info:
        spec.parse("build:\n  script: [make]\ntest:\n  scripts: [pytest]\n")
    message = str(info.value)
    assert "'scripts'" in message and "stage test" in message
    assert "allowed: script, artifacts, coverage, environment, timeout" in message
    assert (info.value.line, info.value.column) == (4, 3)


def test_unknown_top_level_key():
    with pytest.raises(spec.SpecError) as info:
        spec.parse("lint:\n  script: [x]\n")
    assert "unknown key 'lint'" in str(info.value) and "build, test, deploy, verify" in str(info.value)
    assert info.value.line == 1


@pytest.mark.parametrize("text, words", [
    ("", "empty"),
    ("timeout: 5\n", "no stage"),
    ("- a\n- b\n", "must be a mapping"),
    ("test: [a]\n", "stage test must be a mapping"),
    ("test:\n  script: {a: b}\n", "list of strings"),
    ("test:\n  script: [[nested]]\n", "single value"),
    ("test:\n  artifacts: [../../etc]\n", "relative path"),
    ("test:\n  artifacts: [/etc/passwd]\n", "relative path"),
    ("test:\n  timeout: 0\n", "from 1 to 3600"),
    ("test:\n  timeout: soon\n", "whole number"),
    ("limits: {memory: lots}\ntest: {}\n", "limits.memory"),
    ("limits: {processes: 2}\ntest: {}\n", "limits.processes"),
    ("limits: {disk: 1GiB}\ntest: {}\n", "unknown key 'disk'"),
    ("notify: {slack: 'file:///etc/passwd'}\ntest: {}\n", "http"),
    ("notify: {teams: 'http://x'}\ntest: {}\n", "unknown key 'teams'"),
    ("variables: {PROJECT: x}\ntest: {}\n", "not an allowed variable name"),
    ("deploy:\n  environment: {name: p, url: 'javascript:alert(1)'}\n", "environment.url"),
    ("deploy:\n  environment: {region: eu}\n", "unknown key 'region'"),
    ("test:\n  script: [a]\ntest:\n  script: [b]\n", "duplicate key 'test'"),
])
def test_invalid(text, words):
    with pytest.raises(spec.SpecError) as info:
        spec.parse(text)
    assert words in str(info.value)


def test_no_python_objects():
    with pytest.raises(spec.SpecError):
        spec.parse("test:\n  script: !!python/object/apply:os.system ['id']\n")

# -*- coding: utf-8 -*-
"""The pipeline file of a project's CI/CD pipeline: ``.lxdctl.yml`` at the root of the app's repository (``--file`` names another).

Format (every key optional except at least one stage)::

    timeout: 600                 # default wall-clock seconds per stage (1-3600)
    limits: {cpu: 1, memory: 512MiB, processes: 256}   # the run container's limits
    variables: {NODE_ENV: test}  # extra environment of every script line
    notify:                      # Slack- / Discord-compatible incoming webhook URLs
      slack: https://hooks.slack.com/services/...
      discord: https://discord.com/api/webhooks/...
    build:
      script: [npm install, npm run build]
      artifacts: [dist/]
    test:
      script: [npm test, npm run lint]
      coverage: coverage/
    deploy:
      environment: {name: production, url: "https://$PROJECT.$DOMAIN"}
    verify:
      script: []                 # plus lxdctl health-check and smoke-test, always

Stages run in the order build, test, deploy, verify; a stage that is absent is skipped.
``$PROJECT``, ``$BRANCH``, ``$DOMAIN`` and ``$COMMIT`` (or ``${PROJECT}`` ...) are replaced
literally in script lines and environment URLs; nothing else is expanded on the host.

The CLI (``lxdctl pipeline create``) and the role ``pipeline`` (module ``pipeline_spec``) both
parse with this one rule.
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

import yaml

DEFAULT_FILE = ".lxdctl.yml"
STAGES = ("build", "test", "deploy", "verify")
STAGE_KEYS = ("script", "artifacts", "coverage", "environment", "timeout")
TOP_KEYS = STAGES + ("timeout", "limits", "variables", "notify")
LIMIT_KEYS = ("cpu", "memory", "processes")
NOTIFY_KEYS = ("slack", "discord")
ENV_KEYS = ("name", "url")
VARIABLES = ("PROJECT", "BRANCH", "DOMAIN", "COMMIT")
DEFAULT_TIMEOUT = 600
DEFAULT_LIMITS = {"cpu": 1, "memory": "1GiB", "processes": 512}
_VAR_RE = re.compile(r"\$(?:\{(%s)\}|(%s)(?![A-Za-z0-9_]))" % ("|".join(VARIABLES), "|".join(VARIABLES)))
_MEMORY_RE = re.compile(r"^[1-9][0-9]{0,6}(MiB|GiB|MB|GB)$")
_ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_PATH_RE = re.compile(r"^[A-Za-z0-9._@+-][A-Za-z0-9._@+/-]*$")
_URL_RE = re.compile(r"^https?://[^\s]+$")


_PLAIN_TAGS = frozenset("tag:yaml.org,2002:" + t for t in ("str", "int", "float", "bool", "null", "seq", "map"))


class SpecError(Exception):
    """A pipeline file problem; ``str()`` names the file, line and column."""

    def __init__(self, message, mark=None, filename=DEFAULT_FILE):
        self.line = mark.line + 1 if mark is not None else None
        self.column = mark.column + 1 if mark is not None else None
        where = filename if self.line is None else "%s, line %d, column %d" % (filename, self.line, self.column)
        super().__init__("%s: %s" % (where, message))
        self.message = message


class _Loader(yaml.SafeLoader):
    pass


def parse(text, filename=DEFAULT_FILE):
    """The validated spec (plain dicts) of pipeline file ``text``; ``SpecError`` otherwise."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise SpecError("the file is not UTF-8 text", filename=filename)
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "malformed YAML"
        raise SpecError("malformed YAML: %s" % problem, mark, filename)
    except yaml.YAMLError as exc:
        raise SpecError("malformed YAML: %s" % exc, filename=filename)
    validator = _Validator(filename)
    validator.plain_tags(node)
    return validator.top(node)


class _Validator:
    def __init__(self, filename):
        self.filename = filename

    def plain_tags(self, node, depth=0):
        """Only YAML's own types: a ``!!python/...`` or any custom tag is refused."""
        if node is None:
            return
        if depth > 50:
            self.fail("the file nests too deeply", node)
        if node.tag not in _PLAIN_TAGS:
            self.fail("the tag %s is not allowed" % node.tag, node)
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                self.plain_tags(key, depth + 1)
                self.plain_tags(value, depth + 1)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self.plain_tags(item, depth + 1)

    def fail(self, message, node):
        raise SpecError(message, getattr(node, "start_mark", None), self.filename)

    def mapping(self, node, what, allowed):
        if not isinstance(node, yaml.MappingNode):
            self.fail("%s must be a mapping" % what, node)
        seen = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.fail("%s: keys must be plain names" % what, key)
            name = key.value
            if allowed is not None and name not in allowed:
                self.fail("unknown key %r in %s (allowed: %s)" % (name, what, ", ".join(allowed)), key)
            if name in seen:
                self.fail("duplicate key %r in %s" % (name, what), key)
            seen[name] = value
        return seen

    def scalar(self, node, what):
        if not isinstance(node, yaml.ScalarNode) or node.tag in ("tag:yaml.org,2002:null",):
            self.fail("%s must be a single value" % what, node)
        return node.value

    def text(self, node, what):
        value = self.scalar(node, what)
        if "\x00" in value:
            self.fail("%s must not contain NUL characters" % what, node)
        return value

    def integer(self, node, what, low, high):
        value = self.scalar(node, what)
        try:
            number = int(value)
        except ValueError:
            self.fail("%s must be a whole number, got %r" % (what, value), node)
        if not low <= number <= high:
            self.fail("%s must be from %d to %d, got %d" % (what, low, high, number), node)
        return number

    def strings(self, node, what, check=None):
        if isinstance(node, yaml.ScalarNode) and node.tag != "tag:yaml.org,2002:null":
            items = [node]
        elif isinstance(node, yaml.SequenceNode):
            items = node.value
        elif isinstance(node, yaml.ScalarNode):
            return []
        else:
            self.fail("%s must be a list of strings" % what, node)
        out = []
        for item in items:
            value = self.text(item, "each item of %s" % what)
            if check:
                check(value, item)
            out.append(value)
        return out

    def path(self, value, node):
        if not _PATH_RE.match(value) or ".." in value.split("/"):
            self.fail("%r is not a relative path inside the repository" % value, node)

    def top(self, node):
        if node is None:
            raise SpecError("the pipeline file is empty", filename=self.filename)
        keys = self.mapping(node, "the pipeline file", TOP_KEYS)
        spec = {"timeout": DEFAULT_TIMEOUT, "limits": dict(DEFAULT_LIMITS), "variables": {}, "notify": {}, "stages": {}}
        if "timeout" in keys:
            spec["timeout"] = self.integer(keys["timeout"], "timeout", 1, 3600)
        if "limits" in keys:
            limits = self.mapping(keys["limits"], "limits", LIMIT_KEYS)
            if "cpu" in limits:
                spec["limits"]["cpu"] = self.integer(limits["cpu"], "limits.cpu", 1, 64)
            if "processes" in limits:
                spec["limits"]["processes"] = self.integer(limits["processes"], "limits.processes", 16, 100000)
            if "memory" in limits:
                memory = self.text(limits["memory"], "limits.memory")
                if not _MEMORY_RE.match(memory):
                    self.fail("limits.memory must look like 512MiB or 2GiB, got %r" % memory, limits["memory"])
                spec["limits"]["memory"] = memory
        if "variables" in keys:
            for name, value in self.mapping(keys["variables"], "variables", None).items():
                if not _ENV_NAME_RE.match(name) or name in VARIABLES:
                    self.fail("variables: %r is not an allowed variable name" % name, value)
                spec["variables"][name] = self.text(value, "variables.%s" % name)
        if "notify" in keys:
            for name, value in self.mapping(keys["notify"], "notify", NOTIFY_KEYS).items():
                url = self.text(value, "notify.%s" % name)
                if not _URL_RE.match(url):
                    self.fail("notify.%s must be an http:// or https:// URL" % name, value)
                spec["notify"][name] = url
        for stage in STAGES:
            if stage in keys:
                spec["stages"][stage] = self.stage(stage, keys[stage])
        if not spec["stages"]:
            self.fail("the pipeline file has no stage (one of: %s)" % ", ".join(STAGES), node)
        return spec

    def stage(self, name, node):
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {"script": [], "artifacts": [], "coverage": [], "environment": None, "timeout": None}
        keys = self.mapping(node, "stage %s" % name, STAGE_KEYS)
        stage = {"script": [], "artifacts": [], "coverage": [], "environment": None, "timeout": None}
        if "script" in keys:
            stage["script"] = self.strings(keys["script"], "%s.script" % name)
        for key in ("artifacts", "coverage"):
            if key in keys:
                stage[key] = self.strings(keys[key], "%s.%s" % (name, key), self.path)
        if "timeout" in keys:
            stage["timeout"] = self.integer(keys["timeout"], "%s.timeout" % name, 1, 3600)
        if "environment" in keys:
            env = self.mapping(keys["environment"], "%s.environment" % name, ENV_KEYS)
            stage["environment"] = dict((k, self.text(v, "%s.environment.%s" % (name, k))) for k, v in env.items())
            url = stage["environment"].get("url")
            if url is not None and not _URL_RE.match(url):
                self.fail("%s.environment.url must be an http:// or https:// URL" % name, env["url"])
        return stage


def substitute(text, variables):
    """``$PROJECT`` / ``${PROJECT}`` (and BRANCH, DOMAIN, COMMIT) replaced literally; nothing else."""
    return _VAR_RE.sub(lambda m: str(variables.get(m.group(1) or m.group(2), "")), text)


def base_domain(project, domain):
    """``$DOMAIN``: the project's domain without its leading ``<project>.`` label, so the spec's
    ``https://$PROJECT.$DOMAIN`` names the project's own site."""
    if not domain:
        return ""
    prefix = project + "."
    return domain[len(prefix):] if domain.startswith(prefix) and len(domain) > len(prefix) else domain

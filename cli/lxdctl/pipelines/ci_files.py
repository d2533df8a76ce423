"""CI files that deploy each push with lxdctl: GitHub Actions, GitLab CI, Drone, Jenkins.

Each one installs lxdctl with pip, sets the server and token from the CI's secrets
(``LXDCTL_SERVER``, ``LXDCTL_TOKEN``), runs ``lxdctl deploy <name> --branch <ref> --commit <sha>``
and then ``lxdctl test <name>``.  The YAML files are built as data and dumped with
``yaml.safe_dump`` (nothing is templated); the ref and sha come from the CI's own environment
variables, read by the shell of the CI job, never pasted into the file.  Every file is
validated before it is written: YAML parsed back and its structure checked; the Jenkinsfile
by ``check_jenkinsfile``, a tokenizer and parser of the declarative-pipeline subset it uses
(Debian's groovy would pull in a Java runtime of some 25 packages, so no Groovy compiler).
"""
import os
import re

import click
import yaml

FILES = {
    "github": os.path.join(".github", "workflows", "lxd-deploy.yml"),
    "gitlab": ".gitlab-ci.yml",
    "drone": ".drone.yml",
    "jenkins": "Jenkinsfile",
}
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+$")
PIP = "pip install lxdctl"


class CIFileError(Exception):
    pass


class _Dumper(yaml.SafeDumper):
    """Block style, multi-line strings as ``|`` literals, no anchors or aliases."""

    def ignore_aliases(self, data):
        return True


def _str(dumper, data):
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


_Dumper.add_representer(str, _str)


def _dump(doc):
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=1000)


def repo_option(ctx, param, value):
    if value is None:
        return None
    if not _REPO_RE.match(value) or ".." in value:
        raise click.BadParameter("must look like owner/repo (GitLab: group/subgroup/repo)", ctx=ctx, param=param)
    return value


def _configure():
    return ['lxdctl config set server "$LXDCTL_SERVER"', 'lxdctl config set token "$LXDCTL_TOKEN"']


def _commands(name, ref_var, sha_var):
    return ['lxdctl deploy %s --branch "$%s" --commit "$%s"' % (name, ref_var, sha_var),
            'lxdctl test %s --branch "$%s" --commit "$%s"' % (name, ref_var, sha_var)]


def github(name, branch, repo=None):
    deploy, test = _commands(name, "GITHUB_REF_NAME", "GITHUB_SHA")
    doc = {
        "name": "lxd-deploy",
        "on": {"push": {"branches": [branch]}},
        "concurrency": {"group": "lxd-deploy-%s" % name, "cancel-in-progress": False},
        "jobs": {"deploy": {
            "runs-on": "ubuntu-latest",
            "env": {"LXDCTL_SERVER": "${{ secrets.LXDCTL_SERVER }}", "LXDCTL_TOKEN": "${{ secrets.LXDCTL_TOKEN }}"},
            "steps": [
                {"uses": "actions/checkout@v4"},
                {"uses": "actions/setup-python@v5", "with": {"python-version": "3.11"}},
                {"name": "Install lxdctl", "run": PIP},
                {"name": "Configure lxdctl", "run": "\n".join(_configure()) + "\n"},
                {"name": "Deploy", "run": deploy},
                {"name": "Test", "run": test},
            ],
        }},
    }
    header = "# lxdctl: deploy %s on every push to %s%s\n" % (name, branch, " of %s" % repo if repo else "")
    return header + _dump(doc)


def gitlab(name, branch, repo=None):
    deploy, test = _commands(name, "CI_COMMIT_REF_NAME", "CI_COMMIT_SHA")
    common = {"image": "python:3.11-slim", "before_script": [PIP] + _configure(),
              "rules": [{"if": '$CI_COMMIT_BRANCH == "%s"' % branch}]}
    doc = {"stages": ["deploy", "test"],
           "lxd-deploy": dict(common, stage="deploy", script=[deploy]),
           "lxd-test": dict(common, stage="test", script=[test])}
    header = "# lxdctl: deploy %s on every push to %s%s\n" % (name, branch, " of %s" % repo if repo else "")
    header += "# CI/CD variables needed: LXDCTL_SERVER, LXDCTL_TOKEN (masked)\n"
    return header + _dump(doc)


def drone(name, branch, repo=None):
    deploy, test = _commands(name, "DRONE_BRANCH", "DRONE_COMMIT_SHA")
    doc = {"kind": "pipeline", "type": "docker", "name": "lxd-deploy",
           "trigger": {"branch": [branch], "event": ["push"]},
           "steps": [{"name": "deploy", "image": "python:3.11-slim",
                      "environment": {"LXDCTL_SERVER": {"from_secret": "lxdctl_server"},
                                      "LXDCTL_TOKEN": {"from_secret": "lxdctl_token"}},
                      "commands": [PIP] + _configure() + [deploy, test]}]}
    header = "# lxdctl: deploy %s on every push to %s (secrets lxdctl_server, lxdctl_token)\n" % (name, branch)
    return header + _dump(doc)


def _groovy(text):
    """A Groovy single-quoted string literal (no interpolation)."""
    return "'%s'" % text.replace("\\", "\\\\").replace("'", "\\'")


def jenkins(name, branch, repo=None):
    deploy, test = _commands(name, "BRANCH_NAME", "GIT_COMMIT")
    lines = [
        "// lxdctl: deploy %s on every push to %s" % (name, branch),
        "// Jenkins credentials needed: lxdctl-server and lxdctl-token (secret text)",
        "pipeline {",
        "    agent any",
        "    environment {",
        "        LXDCTL_SERVER = credentials('lxdctl-server')",
        "        LXDCTL_TOKEN = credentials('lxdctl-token')",
        "        PATH = \"${env.HOME}/.local/bin:${env.PATH}\"",
        "    }",
        "    stages {",
        "        stage('Install') {",
        "            steps {",
        "                sh %s" % _groovy("pip install --user lxdctl"),
        "            }",
        "        }",
        "        stage('Configure') {",
        "            steps {",
    ] + ["                sh %s" % _groovy(c) for c in _configure()] + [
        "            }",
        "        }",
        "        stage('Deploy') {",
        "            when { branch %s }" % _groovy(branch),
        "            steps {",
        "                sh %s" % _groovy(deploy),
        "            }",
        "        }",
        "        stage('Test') {",
        "            when { branch %s }" % _groovy(branch),
        "            steps {",
        "                sh %s" % _groovy(test),
        "            }",
        "        }",
        "    }",
        "}",
    ]
    return "\n".join(lines) + "\n"


RENDER = {"github": github, "gitlab": gitlab, "drone": drone, "jenkins": jenkins}


# --- validation --------------------------------------------------------------------------
def _yaml(text, what):
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CIFileError("%s is not valid YAML: %s" % (what, exc))
    if not isinstance(doc, dict):
        raise CIFileError("%s must be a YAML mapping" % what)
    return doc


def _need(cond, what, message):
    if not cond:
        raise CIFileError("%s: %s" % (what, message))


def _commands_ok(commands, name, what):
    text = "\n".join(commands)
    _need(re.search(r"pip install (--user )?lxdctl", text), what, "does not install lxdctl")
    _need("lxdctl config set server" in text and "lxdctl config set token" in text, what, "does not set server and token")
    _need(re.search(r"lxdctl deploy %s --branch \S+ --commit \S+" % re.escape(name), text), what,
          "does not deploy the pushed branch and commit")
    _need("lxdctl test %s" % name in text, what, "does not run lxdctl test")


def check_github(text, name):
    what = FILES["github"]
    doc = _yaml(text, what)
    _need(isinstance(doc.get("on"), dict) and "push" in doc["on"], what, "has no `on: push` trigger")
    jobs = doc.get("jobs")
    _need(isinstance(jobs, dict) and jobs, what, "has no jobs")
    for job_name, job in jobs.items():
        _need(isinstance(job, dict) and "runs-on" in job, what, "job %s has no runs-on" % job_name)
        steps = job.get("steps")
        _need(isinstance(steps, list) and steps, what, "job %s has no steps" % job_name)
        for step in steps:
            _need(isinstance(step, dict) and ("run" in step or "uses" in step), what, "a step needs run or uses")
        env = job.get("env") or {}
        _need("secrets.LXDCTL_SERVER" in str(env.get("LXDCTL_SERVER")) and "secrets.LXDCTL_TOKEN" in str(env.get("LXDCTL_TOKEN")),
              what, "server and token must come from secrets")
        _commands_ok([s["run"] for s in steps if "run" in s], name, what)
    return doc


def check_gitlab(text, name):
    what = FILES["gitlab"]
    doc = _yaml(text, what)
    stages = doc.get("stages")
    _need(isinstance(stages, list) and stages, what, "has no stages list")
    jobs = dict((k, v) for k, v in doc.items() if isinstance(v, dict) and "script" in v)
    _need(jobs, what, "has no jobs")
    commands = []
    for job_name, job in jobs.items():
        _need(job.get("stage") in stages, what, "job %s names an unknown stage" % job_name)
        _need(isinstance(job["script"], list) and all(isinstance(c, str) for c in job["script"]), what,
              "job %s: script must be a list of strings" % job_name)
        commands += list(job.get("before_script") or []) + job["script"]
    _commands_ok(commands, name, what)
    return doc


def check_drone(text, name):
    what = FILES["drone"]
    doc = _yaml(text, what)
    _need(doc.get("kind") == "pipeline" and doc.get("type") and doc.get("name"), what, "needs kind: pipeline, type and name")
    steps = doc.get("steps")
    _need(isinstance(steps, list) and steps, what, "has no steps")
    commands = []
    for step in steps:
        _need(isinstance(step, dict) and step.get("name") and step.get("image"), what, "each step needs name and image")
        _need(isinstance(step.get("commands"), list), what, "step %s has no commands" % step.get("name"))
        env = step.get("environment") or {}
        for key in ("LXDCTL_SERVER", "LXDCTL_TOKEN"):
            _need(isinstance(env.get(key), dict) and "from_secret" in env[key], what, "%s must come from a secret" % key)
        commands += step["commands"]
    _commands_ok(commands, name, what)
    return doc


# Jenkinsfile: tokens, then a tree of blocks ``word(args) { ... }``.
_TOKEN_RE = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<tstr>'''.*?(?<!\\)'''|\"\"\".*?(?<!\\)\"\"\")
  | (?P<str>'(?:[^'\\\n]|\\.)*'|"(?:[^"\\\n]|\\.)*")
  | (?P<word>[A-Za-z_$][A-Za-z0-9_$.]*)
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<punct>[{}()\[\],=:+\-*!<>&|?])
""", re.S | re.X)


def _tokens(text):
    pos, out, line = 0, [], 1
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            ch = text[pos]
            what = "an unterminated string" if ch in "'\"" else "an unexpected character %r" % ch
            raise CIFileError("Jenkinsfile line %d: %s" % (line, what))
        kind = match.lastgroup
        if kind not in ("ws", "comment"):
            out.append((kind, match.group(), line))
        line += match.group().count("\n")
        pos = match.end()
    return out


class _Block:
    def __init__(self, name, args, line):
        self.name, self.args, self.line, self.children, self.statements = name, args, line, [], []


def _parse_blocks(tokens):
    """Nested blocks; statements are kept as token lists.  Brackets must balance."""
    root = _Block("<file>", [], 0)
    stack = [root]
    pending = []  # tokens of the statement being read
    depth = []  # open ( and [ inside a statement
    for kind, value, line in tokens:
        if kind == "punct" and (value in "([" or (value == "{" and depth)):
            depth.append((value, line))  # a closure inside ( ) is part of the statement
            pending.append((kind, value, line))
        elif kind == "punct" and (value in ")]" or (value == "}" and depth)):
            if not depth or {"(": ")", "[": "]", "{": "}"}[depth[-1][0]] != value:
                raise CIFileError("Jenkinsfile line %d: unbalanced %r" % (line, value))
            depth.pop()
            pending.append((kind, value, line))
        elif kind == "punct" and value == "{" and not depth:
            if not pending or pending[0][0] != "word":
                raise CIFileError("Jenkinsfile line %d: a block must start with a name" % line)
            block = _Block(pending[0][1], pending[1:], pending[0][2])
            stack[-1].children.append(block)
            stack.append(block)
            pending = []
        elif kind == "punct" and value == "}" and not depth:
            if pending:
                stack[-1].statements.append(pending)
                pending = []
            if len(stack) == 1:
                raise CIFileError("Jenkinsfile line %d: unbalanced '}'" % line)
            stack.pop()
        else:
            if pending and kind == "word" and not depth and pending[-1][2] != line and pending[-1][1] not in ("=", "+", ","):
                stack[-1].statements.append(pending)
                pending = []
            pending.append((kind, value, line))
    if depth:
        raise CIFileError("Jenkinsfile line %d: unclosed %r" % (depth[-1][1], depth[-1][0]))
    if len(stack) != 1:
        raise CIFileError("Jenkinsfile: block %r opened on line %d is never closed" % (stack[-1].name, stack[-1].line))
    if pending:
        root.statements.append(pending)
    return root


def check_jenkinsfile(text, name=None):
    """A declarative pipeline: pipeline { agent ...; stages { stage('x') { steps { ... } } } }."""
    root = _parse_blocks(_tokens(text))
    if len(root.children) != 1 or root.children[0].name != "pipeline" or root.statements:
        raise CIFileError("Jenkinsfile: the file must hold exactly one `pipeline { ... }` block")
    pipe = root.children[0]
    has_agent = any(s[0][1] == "agent" for s in pipe.statements) or any(c.name == "agent" for c in pipe.children)
    if not has_agent:
        raise CIFileError("Jenkinsfile: pipeline has no agent")
    stages = [c for c in pipe.children if c.name == "stages"]
    if len(stages) != 1:
        raise CIFileError("Jenkinsfile: pipeline needs exactly one stages block")
    stage_blocks = stages[0].children
    if not stage_blocks or any(c.name != "stage" for c in stage_blocks) or stages[0].statements:
        raise CIFileError("Jenkinsfile: stages may hold only stage('name') { ... } blocks, at least one")
    commands = []
    for stage in stage_blocks:
        args = [v for k, v, _ in stage.args]
        if len(args) != 3 or args[0] != "(" or args[2] != ")" or not args[1].startswith(("'", '"')):
            raise CIFileError("Jenkinsfile line %d: a stage needs a quoted name: stage('name')" % stage.line)
        steps = [c for c in stage.children if c.name == "steps"]
        if len(steps) != 1:
            raise CIFileError("Jenkinsfile line %d: stage %s needs one steps block" % (stage.line, args[1]))
        for statement in steps[0].statements:
            if statement[0][1] == "sh" and len(statement) == 2 and statement[1][0] == "str":
                commands.append(_unquote(statement[1][1]))
        for other in stage.children:
            if other.name not in ("steps", "when", "environment", "options", "post", "agent"):
                raise CIFileError("Jenkinsfile line %d: unknown section %r in a stage" % (other.line, other.name))
    for other in pipe.children:
        if other.name not in ("stages", "environment", "options", "post", "agent", "triggers", "parameters", "tools"):
            raise CIFileError("Jenkinsfile line %d: unknown section %r in pipeline" % (other.line, other.name))
    if name is not None:
        _commands_ok(commands, name, "Jenkinsfile")
    return commands


def _unquote(literal):
    body = literal[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


CHECK = {"github": check_github, "gitlab": check_gitlab, "drone": check_drone, "jenkins": check_jenkinsfile}


def render(kind, name, branch, repo=None):
    text = RENDER[kind](name, branch, repo)
    CHECK[kind](text, name)
    return text


def write(kind, name, branch, output_dir, repo=None, force=False):
    """Write the validated file under ``output_dir``; ``(path, changed)``."""
    text = render(kind, name, branch, repo)
    path = os.path.join(output_dir, FILES[kind])
    if os.path.exists(path):
        with open(path) as handle:
            current = handle.read()
        if current == text:
            return path, False
        if not force:
            raise CIFileError("%s exists and differs (use --force to overwrite)" % path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)
    return path, True

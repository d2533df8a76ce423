#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pipeline_spec
short_description: Fetch a branch or commit, read its pipeline file and plan the run's stages
description:
  - Clones O(repository) at O(branch) (its newest commit) or O(commit) into a new private (0700) work
    directory and writes one tar archive of that commit there (git runs with argument lists and the
    URL, branch and commit rules of module_utils C(_release); no remote helpers). Unlike a deploy, the
    tree needs no runtime marker file.
  - Reads the pipeline file O(file) (C(.lxdctl.yml) by default) at that commit,
    checks it with the one rule of the pipeline file format (module_utils C(_pipeline_spec)),
    and returns the stages to run in order (build, test, deploy, verify; only those of O(only) when
    given) with C($PROJECT), C($BRANCH), C($DOMAIN) and C($COMMIT) replaced literally in their
    script lines and environment URLs.
  - A malformed file fails with its line and column; an unknown key fails naming it.
  - Changes nothing but its own work directory, so it also runs in check mode.
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
options:
  repository:
    description: The git repository (any URL git clones, local paths too).
    type: str
    required: true
  file:
    description: The pipeline file's path inside the repository.
    type: str
    default: .lxdctl.yml
  project:
    description: The project (C($PROJECT)).
    type: str
    required: true
  branch:
    description: The branch (C($BRANCH)).
    type: str
    required: true
  commit:
    description: The commit (4-40 hex characters, on O(branch)); empty means the branch's newest. C($COMMIT) is its full id.
    type: str
    default: ""
  domain:
    description: The project's domain; C($DOMAIN) is it without its leading C(<project>.) label.
    type: str
    default: ""
  only:
    description: Run only these stages.
    type: list
    elements: str
    default: []
"""

EXAMPLES = r"""
- name: Plan the run from the pipeline file at the commit
  lxdctl.platform.pipeline_spec:
    repository: /srv/git/myapp.git
    project: myapp
    branch: main
    domain: myapp.lxdctl.test
  register: plan
"""

RETURN = r"""
archive:
  description: The tar archive of the commit.
  returned: success
  type: str
workdir:
  description: The private work directory that holds the archive (remove it when done).
  returned: success
  type: str
commit:
  description: The full commit id.
  returned: success
  type: str
stages:
  description: The stages to run, in order, each C({name, script, timeout, artifacts, coverage, environment}).
  returned: always
  type: list
  elements: dict
environment:
  description: The environment of every script line (the file's variables, the four run variables, CI=true).
  returned: always
  type: dict
limits:
  description: The run container's limits, C({cpu, memory, processes}).
  returned: always
  type: dict
notify:
  description: Notice URLs of the pipeline file.
  returned: always
  type: dict
"""

import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _names
from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_spec as specmod
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
# fetch and read_member are shared with module pipeline_config (it checks the file before registering)
from ansible_collections.lxdctl.platform.plugins.module_utils._pipeline_source import fetch, read_member  # noqa: F401

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def plan(text, params):
    """The run's plan from the pipeline file's text; ``SpecError`` for a bad file."""
    filename = params["file"]
    spec = specmod.parse(text, filename)
    variables = {"PROJECT": params["project"], "BRANCH": params["branch"], "COMMIT": params["commit"],
                 "DOMAIN": specmod.base_domain(params["project"], params["domain"])}
    names = [s for s in specmod.STAGES if s in spec["stages"]]
    if params["only"]:
        names = [s for s in names if s in params["only"]]
        if not names:
            raise LxdctlError("the pipeline file has no %s stage" % " or ".join(params["only"]))
    stages = []
    for name in names:
        stage = spec["stages"][name]
        env = stage.get("environment")
        stages.append({"name": name, "script": [specmod.substitute(line, variables) for line in stage["script"]],
                       "timeout": stage.get("timeout") or spec["timeout"], "artifacts": stage["artifacts"],
                       "coverage": stage["coverage"],
                       "environment": dict((k, specmod.substitute(v, variables)) for k, v in env.items()) if env else {}})
    environment = dict(spec["variables"])
    environment.update(variables)
    environment.update(CI="true", HOME="/root", PATH=PATH)
    return dict(stages=stages, environment=environment, limits=spec["limits"], notify=spec["notify"])


def argument_spec():
    return dict(
        repository=dict(type="str", required=True),
        file=dict(type="str", default=specmod.DEFAULT_FILE),
        project=dict(type=_names.argspec_project_name, required=True),
        branch=dict(type="str", required=True),
        commit=dict(type="str", default=""),
        domain=dict(type="str", default=""),
        only=dict(type="list", elements="str", default=[]),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    params = module.params
    try:
        if not specmod._PATH_RE.match(params["file"]) or ".." in params["file"].split("/"):
            raise ValidationError("file", "must be a relative path inside the repository, like .lxdctl.yml",
                                  params["file"])
        for name in params["only"]:
            if name not in specmod.STAGES:
                raise ValidationError("only", "stages are %s" % ", ".join(specmod.STAGES), name)
        work = tempfile.mkdtemp(prefix="lxdctl-pipeline-")
        try:
            archive, commit = fetch(params["repository"], params["branch"], params["commit"], work)
            text = read_member(archive, params["file"])
            if text is None:
                raise LxdctlError("the pipeline file %s is not in %s at %s" % (params["file"], params["repository"],
                                                                              commit[:12]))
            try:
                result = plan(text, dict(params, commit=commit))
            except specmod.SpecError as exc:
                raise LxdctlError(str(exc))
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
    except LxdctlError as err:
        module.fail_json(msg=err.msg, commit=locals().get("commit") or "")
    module.exit_json(changed=False, archive=archive, workdir=work, commit=commit, **result)


if __name__ == "__main__":
    main()

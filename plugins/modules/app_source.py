#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: app_source
short_description: Fetch an app's code into one archive and detect its runtime
description:
  - Fetches the code of a deploy on the managed host - a git repository at a branch or commit,
    or a local directory - and writes one tar archive of the tree into a new private (0700)
    work directory, for M(lxdctl.platform.app_release) to build.
  - git runs with argument lists, C(--) before the URL, C(GIT_ALLOW_PROTOCOL=file:git:http:https:ssh)
    and C(protocol.ext.allow=never); URLs starting with C(-) or using a C(<transport>::) remote
    helper are refused before git runs. Unknown branches and commits are named in the error.
  - The runtime comes from the tree (package.json - node, requirements.txt or pyproject.toml -
    python, go.mod - go); O(runtime) breaks ties. A tree with no runtime is refused.
  - Changes nothing but its own work directory, so it also runs in check mode.
version_added: "0.2.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.attributes.ALL
options:
  repository:
    description: The git repository (any URL git clones, local paths too). Mutually exclusive with O(path).
    type: str
  branch:
    description: The branch (default the repository's HEAD).
    type: str
    default: ""
  commit:
    description: The commit (4-40 hex characters); with O(branch) it must be on that branch.
    type: str
    default: ""
  path:
    description: A local directory to deploy instead of a repository (C(.git), C(node_modules), C(.venv) left out).
    type: path
  runtime:
    description: The project's runtime, which breaks ties between marker files.
    type: str
    default: ""
"""

EXAMPLES = r"""
- name: Fetch main of the project's repository
  lxdctl.platform.app_source:
    repository: /srv/git/myapp.git
    branch: main
  register: _src
"""

RETURN = r"""
archive:
  description: The tar archive of the tree.
  returned: success
  type: str
workdir:
  description: The private work directory that holds the archive (remove it when done).
  returned: success
  type: str
commit:
  description: The full commit id (empty for a local directory).
  returned: success
  type: str
runtime:
  description: The runtime, V(node), V(python) or V(go).
  returned: success
  type: str
files:
  description: The tree's top-level names (at most 200).
  returned: success
  type: list
  elements: str
"""

import os
import shutil
import tarfile
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _release as rel
from ansible_collections.lxdctl.platform.plugins.module_utils._git import git
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError

LEFT_OUT = (".git", "node_modules", ".venv", rel.META)


class SourceService(object):
    def __init__(self, module):
        self.p = module.params

    def run(self):
        work = tempfile.mkdtemp(prefix="lxdctl-deploy-")
        try:
            return self.fetch(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise

    def fetch(self, work):
        p = self.p
        archive = os.path.join(work, "release.tar")
        commit = ""
        if p["path"]:
            src = os.path.abspath(p["path"])
            if not os.path.isdir(src):
                raise rel.Failure("path: %s is not a directory" % p["path"])
            files = sorted(os.listdir(src))
            with tarfile.open(archive, "w") as tar:
                for name in files:
                    if name not in LEFT_OUT:
                        tar.add(os.path.join(src, name), arcname=name)
            where = " in %s" % src
        else:
            url = rel.check_repo_url(p["repository"])
            if p["commit"]:
                rel.check_commit(p["commit"])
            if p["branch"]:
                rel.check_branch(p["branch"])
            commit = self.clone(url, work, archive)
            files = git(["ls-tree", "--name-only", commit], "git ls-tree", cwd=os.path.join(work, "clone")).splitlines()
            shutil.rmtree(os.path.join(work, "clone"), ignore_errors=True)
            where = ""
        runtime = rel.detect_runtime(files, p["runtime"] or None)
        if runtime is None:
            raise rel.Failure("no runtime recognised: the source has none of package.json (node), requirements.txt or "
                              "pyproject.toml (python), go.mod (go)%s" % where)
        return dict(changed=False, archive=archive, workdir=work, commit=commit, runtime=runtime, files=files[:200])

    def clone(self, url, work, archive):
        p = self.p
        clone = os.path.join(work, "clone")
        clone_args = ["clone", "--quiet", "--no-checkout", "--no-tags"]
        if p["branch"] and not p["commit"]:
            clone_args += ["--single-branch", "--branch", p["branch"]]
        try:
            git(clone_args + ["--", url, clone], "git clone of %s" % url)
        except rel.Failure as exc:
            if p["branch"] and ("not found" in exc.msg or "Could not find remote branch" in exc.msg):
                raise rel.Failure("the branch %r does not exist in %s" % (p["branch"], url))
            raise
        ref = p["commit"] or "HEAD"
        try:
            commit = git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"], "rev-parse", cwd=clone)
        except rel.Failure:
            raise rel.Failure("the commit %s does not exist in %s%s" % (
                ref, url, " (branch %s)" % p["branch"] if p["branch"] else ""))
        if p["commit"] and p["branch"]:
            try:
                git(["merge-base", "--is-ancestor", commit, "origin/" + p["branch"]], "merge-base", cwd=clone)
            except rel.Failure:
                raise rel.Failure("the commit %s is not on branch %s of %s" % (p["commit"], p["branch"], url))
        git(["archive", "--format=tar", "-o", archive, commit], "git archive", cwd=clone)
        return commit


def argument_spec():
    return dict(
        repository=dict(type="str"),
        branch=dict(type="str", default=""),
        commit=dict(type="str", default=""),
        path=dict(type="path"),
        runtime=dict(type="str", default=""),
    )


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True,
                           mutually_exclusive=[("repository", "path")], required_one_of=[("repository", "path")])
    try:
        result = SourceService(module).run()
    except LxdctlError as err:
        module.fail_json(msg=err.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
"""A pipeline's source on the host: one commit of the project's repository as a tar archive.

Module ``pipeline_spec`` fetches the commit a run runs; module ``pipeline_config`` fetches the
branch's newest commit to check the pipeline file before it registers the pipeline.  Both use
the URL, branch and commit rules of ``_release`` and git with argument lists (``_git``).
"""
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tarfile

from ansible_collections.lxdctl.platform.plugins.module_utils import _release as rel
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError
from ansible_collections.lxdctl.platform.plugins.module_utils._git import git

MAX_FILE = 1024 * 1024


def read_member(archive, path):
    """The bytes of ``path`` in the tar ``archive``, or None when it is not a regular file there."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            try:
                member = tar.getmember(path)
            except KeyError:
                return None
            if not member.isfile() or member.size > MAX_FILE:
                return None
            return tar.extractfile(member).read()
    except (OSError, tarfile.TarError) as exc:
        raise LxdctlError("Failed to read the source archive %s: %s" % (archive, exc))


def fetch(repository, branch, commit, work):
    """``(archive, full commit)`` of ``commit`` (or the newest of ``branch``) of ``repository``,
    the archive written into the private directory ``work``."""
    url = rel.check_repo_url(repository)
    rel.check_branch(branch)
    if commit:
        rel.check_commit(commit)
    clone = os.path.join(work, "clone")
    args = ["clone", "--quiet", "--no-checkout", "--no-tags"]
    if not commit:
        args += ["--single-branch", "--branch", branch]
    try:
        git(args + ["--", url, clone], "git clone of %s" % url)
    except rel.Failure as exc:
        if not commit and ("not found" in exc.msg or "Could not find remote branch" in exc.msg):
            raise rel.Failure("the branch %s does not exist in %s" % (branch, url))
        raise
    ref = commit or "HEAD"
    try:
        full = git(["rev-parse", "--verify", "--quiet", "--end-of-options", ref + "^{commit}"], "rev-parse", cwd=clone)
    except rel.Failure:
        raise rel.Failure("the %s %s does not exist in %s" % ("commit" if commit else "branch", commit or branch, url))
    if commit:
        try:
            git(["merge-base", "--is-ancestor", full, "origin/" + branch], "merge-base", cwd=clone)
        except rel.Failure:
            raise rel.Failure("the commit %s is not on branch %s of %s" % (commit, branch, url))
    archive = os.path.join(work, "source.tar")
    git(["archive", "--format=tar", "-o", archive, full], "git archive", cwd=clone)
    shutil.rmtree(clone, ignore_errors=True)
    return archive, full

#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: pipeline_config
short_description: Register a project's pipeline, record its push triggers, cancel its runs, keep its webhook secret
description:
  - The records of a project's CI/CD pipeline in the lxdctl state store, other than a run's
    (module M(lxdctl.platform.pipeline_run) writes those). The pipeline is the project's one
    pipeline, named C(default).
  - O(state=present) registers (or updates) the pipeline after checking its file O(file) at the
    newest commit of O(branch) - the repository is fetched with git on the host into a private temp
    directory, removed afterwards; a malformed file fails with its line and column, an unknown key
    fails naming it. The stored C(notify) URLs are merged with O(notify); the stored push triggers
    are kept, their branch set to O(branch). Checked in check mode too (nothing is written).
  - O(state=triggers) merges O(triggers) (the GitHub or GitLab repository whose pushes trigger the
    pipeline, as C(lxdctl pipeline setup --github/--gitlab) records it) into an existing pipeline; a
    project without a pipeline is left alone.
  - O(state=cancelled) marks the queued and running runs cancelled; the runner of a running run sees
    it and stops its stage (the container, or the deploy's process tree).
  - O(state=secret) makes the webhook secret (40 characters, stored encrypted) unless it exists, or a
    new one with O(rotate). The value is returned only with O(reveal); register such a task with
    C(no_log).
version_added: "0.1.0"
author: lxdctl engineers
extends_documentation_fragment:
  - lxdctl.platform.state
  - lxdctl.platform.attributes.ALL
options:
  project:
    description: The project.
    type: str
    required: true
  state:
    description: What to do (see the description).
    type: str
    choices: [present, triggers, cancelled, secret]
    default: present
  file:
    description: With O(state=present), the pipeline file's path inside the repository.
    type: str
    default: .lxdctl.yml
  branch:
    description: With O(state=present), the pipeline's branch (empty means the project's branch, else C(main)).
    type: str
    default: ""
  notify:
    description: With O(state=present), C(slack) and C(discord) notice URLs (http or https) to store.
    type: dict
    default: {}
  triggers:
    description: With O(state=triggers), C(github) (OWNER/REPO) and C(gitlab) (GROUP/REPO) to record.
    type: dict
    default: {}
  rotate:
    description: With O(state=secret), make a new secret even if one exists (the old one stops working).
    type: bool
    default: false
  reveal:
    description: With O(state=secret), return the secret in RV(secret).
    type: bool
    default: false
"""

EXAMPLES = r"""
- name: Register the pipeline of myapp (its .lxdctl.yml checked at the newest commit of main)
  lxdctl.platform.pipeline_config:
    project: myapp
    branch: main
    notify: {slack: "https://hooks.slack.com/services/T/B/X"}

- name: Record the GitHub repository whose pushes trigger it
  lxdctl.platform.pipeline_config:
    project: myapp
    state: triggers
    triggers: {github: acme/myapp}

- name: Cancel its queued and running runs
  lxdctl.platform.pipeline_config:
    project: myapp
    state: cancelled

- name: Rotate the webhook secret
  lxdctl.platform.pipeline_config:
    project: myapp
    state: secret
    rotate: true
  no_log: true
"""

RETURN = r"""
pipeline:
  description: >-
    The pipeline after the change, C({project, file, branch, stages, notify, triggers}) (C(notify):
    the names of the notice targets, never their URLs); empty when the project has none.
  returned: always
  type: dict
cancelled:
  description: With O(state=cancelled), the numbers of the runs cancelled (newest first).
  returned: always
  type: list
  elements: int
secret:
  description: With O(state=secret) and O(reveal), the webhook secret (null in check mode when it would be made).
  returned: when asked
  type: str
rotated:
  description: With O(state=secret), whether an existing secret was replaced.
  returned: always
  type: bool
"""

import re
import shutil
import tempfile

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.lxdctl.platform.plugins.module_utils import _names, _state
from ansible_collections.lxdctl.platform.plugins.module_utils import _pipeline_spec as specmod
from ansible_collections.lxdctl.platform.plugins.module_utils._errors import LxdctlError, ValidationError
from ansible_collections.lxdctl.platform.plugins.module_utils._pipeline_run import PIPELINE
from ansible_collections.lxdctl.platform.plugins.module_utils._pipeline_source import fetch, read_member
from ansible_collections.lxdctl.platform.plugins.module_utils._service import run_service

SECRET_NAME = "webhook-secret"
SECRET_LENGTH = 40
TRIGGER_KEYS = ("github", "gitlab")
_REPO_RE = re.compile(r"^[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)+$")


def public(project, row):
    """What a pipeline row shows: no notice URLs (they may carry tokens), only their names."""
    if not row:
        return {}
    config = row.get("config") or {}
    stored = config.get("stages") or []
    return {"project": project, "file": config.get("file") or specmod.DEFAULT_FILE, "branch": config.get("branch"),
            "stages": [s for s in specmod.STAGES if s in stored], "notify": sorted(config.get("notify") or {}),
            "triggers": dict(row.get("triggers") or {})}


def check_file(repository, branch, filename):
    """The stages of the pipeline file ``filename`` at the newest commit of ``branch``."""
    work = tempfile.mkdtemp(prefix="lxdctl-pipeline-")
    try:
        archive, commit = fetch(repository, branch, "", work)
        text = read_member(archive, filename)
        if text is None:
            raise LxdctlError("the pipeline file %s is not in %s at %s" % (filename, repository, commit[:12]))
        try:
            return sorted(specmod.parse(text, filename)["stages"])
        except specmod.SpecError as exc:
            raise LxdctlError(str(exc))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def validate(params):
    name = params["file"]
    if not specmod._PATH_RE.match(name) or ".." in name.split("/"):
        raise ValidationError("file", "must be a relative path inside the repository, like .lxdctl.yml", name)
    for key, url in (params["notify"] or {}).items():
        if key not in specmod.NOTIFY_KEYS:
            raise ValidationError("notify", "targets are %s" % ", ".join(specmod.NOTIFY_KEYS), key)
        if not isinstance(url, str) or not specmod._URL_RE.match(url):
            raise ValidationError("notify.%s" % key, "must be an http:// or https:// URL")
    for key, repo in (params["triggers"] or {}).items():
        if key not in TRIGGER_KEYS:
            raise ValidationError("triggers", "triggers are %s" % ", ".join(TRIGGER_KEYS), key)
        if not isinstance(repo, str) or not _REPO_RE.match(repo) or ".." in repo:
            raise ValidationError("triggers.%s" % key, "must look like owner/repo (GitLab: group/subgroup/repo)", repo)


class ConfigService:
    def __init__(self, module, store):
        self.module = module
        self.store = store
        self.params = module.params
        self.project = self.params["project"]
        self.result = dict(changed=False, pipeline={}, cancelled=[], rotated=False)

    def run(self):
        self.row = self.store.get_project(self.project)
        if self.row is None:
            raise LxdctlError("project %s does not exist in the state (lxdctl create)" % self.project)
        getattr(self, "_" + self.params["state"])()
        return self.result

    def _audit(self, action, detail):
        self.store.audit(_state.default_actor(), action, project=self.project, detail=detail)

    def _write(self, before, config, triggers, action, detail):
        """Write the pipeline row when it differs; ``changed`` and ``diff`` from the difference."""
        old = {"config": (before or {}).get("config"), "triggers": (before or {}).get("triggers")} if before else {}
        new = {"config": config, "triggers": triggers}
        changed = old != new
        self.result["changed"] = changed
        self.result["diff"] = {"before": _shown(old), "after": _shown(new)}
        after = dict(before or {}, config=config, triggers=triggers)
        if changed and not self.module.check_mode:
            after, _ = self.store.upsert_pipeline(self.project, PIPELINE, config=config, triggers=triggers)
            self._audit(action, detail)
        self.result["pipeline"] = public(self.project, after)

    def _present(self):
        p = self.params
        repository = self.row.get("git_repository")
        if not repository:
            raise LxdctlError("project %s has no git repository (lxdctl create --git URL)" % self.project)
        branch = p["branch"] or self.row.get("git_branch") or "main"
        stages = check_file(repository, branch, p["file"])
        before = self.store.get_pipeline(self.project, PIPELINE)
        notify = dict(((before or {}).get("config") or {}).get("notify") or {})
        notify.update(p["notify"] or {})
        triggers = dict((before or {}).get("triggers") or {})
        triggers["branch"] = branch
        config = {"file": p["file"], "branch": branch, "notify": notify, "stages": stages}
        self._write(before, config, triggers, "pipeline.create", {"file": p["file"], "branch": branch})

    def _triggers(self):
        before = self.store.get_pipeline(self.project, PIPELINE)
        if before is None:
            return  # nothing to trigger yet: `lxdctl pipeline setup` still writes the CI file
        triggers = dict(before.get("triggers") or {})
        triggers.update(self.params["triggers"] or {})
        self._write(before, before.get("config"), triggers, "pipeline.triggers", dict(self.params["triggers"] or {}))

    def _require_pipeline(self):
        row = self.store.get_pipeline(self.project, PIPELINE)
        if row is None:
            raise LxdctlError("project %s has no pipeline (lxdctl pipeline create %s)" % (self.project, self.project))
        return row

    def _cancelled(self):
        self.result["pipeline"] = public(self.project, self._require_pipeline())
        active = [row for row in self.store.list_pipeline_runs(self.project, PIPELINE, limit=100)
                  if row["status"] in ("queued", "running")]
        self.result["cancelled"] = [row["run_number"] for row in active]
        self.result["changed"] = bool(active)
        self.result["diff"] = {"before": dict(("run %d" % r["run_number"], r["status"]) for r in active),
                               "after": dict(("run %d" % r["run_number"], "cancelled") for r in active)}
        if active and not self.module.check_mode:
            for row in active:
                self.store.update_pipeline_run(row["id"], status="cancelled")
            self._audit("pipeline.cancel", {"runs": self.result["cancelled"]})

    def _secret(self):
        p = self.params
        existing = self.store.get_secret(self.project, SECRET_NAME)
        make = existing is None or p["rotate"]
        self.result["changed"] = make
        self.result["rotated"] = make and existing is not None
        # the diff says that the secret changes, never what it is
        self.result["diff"] = {"before": {"webhook_secret": "(set)" if existing is not None else None},
                               "after": {"webhook_secret": "(new)" if make else "(set)"}}
        value = existing
        if make:
            value = None
            if not self.module.check_mode:
                value, _ = self.store.get_or_create_secret(self.project, SECRET_NAME, length=SECRET_LENGTH,
                                                           rotate=existing is not None)
                self._audit("pipeline.secret", {"rotated": self.result["rotated"]})
        if p["reveal"]:
            self.result["secret"] = value


def _shown(record):
    """A pipeline record for the diff, without the notice URLs' secrets-in-paths."""
    if not record:
        return {}
    config = dict(record.get("config") or {})
    if config.get("notify"):
        config["notify"] = sorted(config["notify"])
    return {"config": config, "triggers": record.get("triggers")}


def argument_spec():
    spec = dict(
        project=dict(type=_names.argspec_project_name, required=True),
        state=dict(type="str", choices=["present", "triggers", "cancelled", "secret"], default="present"),
        file=dict(type="str", default=specmod.DEFAULT_FILE),
        branch=dict(type="str", default=""),
        notify=dict(type="dict", default={}, no_log=False),
        triggers=dict(type="dict", default={}),
        rotate=dict(type="bool", default=False),
        reveal=dict(type="bool", default=False),
    )
    spec.update(_state.CONNECTION_ARGSPEC)
    return spec


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    run_service(module, _state.open_from_params, ConfigService, validate=validate)


if __name__ == "__main__":
    main()

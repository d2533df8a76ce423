"""Generated CI files: each parses back, has the expected structure, and is written by the CLI."""
import os

import pytest
import yaml
from click.testing import CliRunner

from lxdctl.pipelines import ci_files


@pytest.mark.parametrize("kind", ["github", "gitlab", "drone"])
def test_yaml_files_parse_back(kind):
    text = ci_files.render(kind, "myapp", "main", "acme/myapp")
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict)
    ci_files.CHECK[kind](text, "myapp")
    assert "lxdctl deploy myapp --branch" in text and "lxdctl test myapp" in text
    assert "pip install lxdctl" in text
    assert "lxdctl config set server" in text and "lxdctl config set token" in text


def test_github_structure():
    doc = yaml.safe_load(ci_files.github("myapp", "release", "acme/myapp"))
    assert doc["on"] == {"push": {"branches": ["release"]}}
    job = doc["jobs"]["deploy"]
    assert job["env"] == {"LXDCTL_SERVER": "${{ secrets.LXDCTL_SERVER }}", "LXDCTL_TOKEN": "${{ secrets.LXDCTL_TOKEN }}"}
    runs = [s["run"] for s in job["steps"] if "run" in s]
    assert runs[-2] == 'lxdctl deploy myapp --branch "$GITHUB_REF_NAME" --commit "$GITHUB_SHA"'
    assert runs[-1] == 'lxdctl test myapp --branch "$GITHUB_REF_NAME" --commit "$GITHUB_SHA"'
    # the pushed ref and sha are read by the job's shell, never pasted as ${{ }} into a script
    assert not any("${{" in r for r in runs)


def test_gitlab_structure():
    doc = yaml.safe_load(ci_files.gitlab("myapp", "main"))
    assert doc["stages"] == ["deploy", "test"]
    assert doc["lxd-deploy"]["stage"] == "deploy" and doc["lxd-test"]["stage"] == "test"
    assert doc["lxd-deploy"]["script"] == ['lxdctl deploy myapp --branch "$CI_COMMIT_REF_NAME" --commit "$CI_COMMIT_SHA"']
    assert doc["lxd-deploy"]["rules"] == [{"if": '$CI_COMMIT_BRANCH == "main"'}]


def test_drone_structure():
    doc = yaml.safe_load(ci_files.drone("myapp", "main"))
    assert doc["kind"] == "pipeline" and doc["trigger"] == {"branch": ["main"], "event": ["push"]}
    step = doc["steps"][0]
    assert step["environment"]["LXDCTL_TOKEN"] == {"from_secret": "lxdctl_token"}
    assert step["commands"][-2].startswith("lxdctl deploy myapp --branch \"$DRONE_BRANCH\"")


def test_jenkinsfile_parses():
    text = ci_files.jenkins("myapp", "main")
    commands = ci_files.check_jenkinsfile(text, "myapp")
    assert commands[0] == "pip install --user lxdctl"
    assert commands[-1] == 'lxdctl test myapp --branch "$BRANCH_NAME" --commit "$GIT_COMMIT"'


def test_jenkins_branch_quoted():
    text = ci_files.jenkins("myapp", "it's")
    assert "branch 'it\\'s'" in text
    ci_files.check_jenkinsfile(text, "myapp")


@pytest.mark.parametrize("text, words", [
    ("pipeline {\n agent any\n stages {\n stage('a') {\n steps { sh 'x' }\n }\n }\n", "never closed"),
    ("pipeline {\n agent any\n stages {\n stage('a') {\n steps { sh 'x }\n }\n }\n}\n", "unterminated string"),
    ("pipeline {\n agent any\n stages { stage('a') { steps { sh('x' } } }\n}\n", "unbalanced"),
    ("pipeline {\n stages { stage('a') { steps { sh 'x' } } }\n}\n", "no agent"),
    ("pipeline {\n agent any\n}\n", "exactly one stages"),
    ("pipeline {\n agent any\n stages { }\n}\n", "at least one"),
    ("pipeline {\n agent any\n stages { stage('a') { sh 'x' } }\n}\n", "one steps block"),
    ("pipeline {\n agent any\n stages { stage(a) { steps { sh 'x' } } }\n}\n", "quoted name"),
    ("pipeline {\n agent any\n stages { stage('a') { steps { sh 'x' } } }\n}\n}\n", "unbalanced '}'"),
    ("node {\n sh 'x'\n}\n", "pipeline"),
    ("pipeline {\n agent any\n stages { stage('a') { stepz { sh 'x' } } }\n}\n", "one steps block"),
])
def test_jenkinsfile_errors(text, words):
    with pytest.raises(ci_files.CIFileError) as info:
        ci_files.check_jenkinsfile(text)
    assert words in str(info.value)


def test_jenkinsfile_comments_and_strings():
    text = ("// a comment { not a block\n/* also { not } */\npipeline {\n agent { label 'x' }\n"
            " stages {\n  stage(\"b{c\") {\n   steps {\n    sh '''echo {\n'''\n    sh \"echo ${env.X}\"\n   }\n  }\n }\n}\n")
    ci_files.check_jenkinsfile(text)


@pytest.mark.parametrize("kind, text, words", [
    ("github", "on: [push]\n", "on: push"),
    ("github", "'on': {push: {}}\njobs: {d: {steps: [{run: x}]}}\n", "runs-on"),
    ("gitlab", "deploy: {script: [x]}\n", "stages"),
    ("drone", "kind: pipeline\n", "type and name"),
    ("github", "a: [\n", "not valid YAML"),
])
def test_yaml_checks_catch_bad_files(kind, text, words):
    with pytest.raises(ci_files.CIFileError) as info:
        ci_files.CHECK[kind](text, "myapp")
    assert words in str(info.value)


def test_check_requires_deploy_of_pushed_commit():
    text = ci_files.github("myapp", "main").replace("--commit", "--kommit")
    with pytest.raises(ci_files.CIFileError):
        ci_files.check_github(text, "myapp")


def test_write_paths_and_overwrite(tmp_path):
    for kind, rel in ci_files.FILES.items():
        path, changed = ci_files.write(kind, "myapp", "main", str(tmp_path), repo="acme/myapp")
        assert changed and path == os.path.join(str(tmp_path), rel)
        assert ci_files.write(kind, "myapp", "main", str(tmp_path), repo="acme/myapp") == (path, False)
    assert os.path.isfile(tmp_path / ".github" / "workflows" / "lxd-deploy.yml")
    with pytest.raises(ci_files.CIFileError):
        ci_files.write("gitlab", "myapp", "other", str(tmp_path))
    assert ci_files.write("gitlab", "myapp", "other", str(tmp_path), force=True)[1]


def test_setup_command_rejects_bad_usage():
    from lxdctl.main import cli

    runner = CliRunner()
    result = runner.invoke(cli, ["pipeline", "setup", "myapp"])
    assert result.exit_code == 2 and "exactly one" in result.output
    result = runner.invoke(cli, ["pipeline", "setup", "myapp", "--github", "not a repo"])
    assert result.exit_code == 2 and "owner/repo" in result.output
    result = runner.invoke(cli, ["pipeline", "setup", "myapp", "--drone", "--jenkins"])
    assert result.exit_code == 2

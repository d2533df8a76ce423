"""The deploy role's Molecule scenario (molecule/deploy): prepare a project, deploy, verify, destroy."""
import os
import subprocess
import sys

import pytest

from lxdctl.collection import collections_path

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_molecule_deploy_scenario():
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), LXDCTL_PYTHON=sys.executable,
               PATH=bin_dir + os.pathsep + os.environ["PATH"], ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PY_COLORS="0")
    proc = subprocess.run([os.path.join(bin_dir, "molecule"), "test", "-s", "deploy"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    assert "4 passed" in output

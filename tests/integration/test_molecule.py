"""Each role's Molecule scenario (molecule/<scenario>), run with the copy of the collection under test."""
import os
import subprocess
import sys

import pytest

from lxdctl.collection import collections_path

pytestmark = pytest.mark.integration

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# What each scenario's output must show besides a zero exit: its idempotence step ran, and
# the testinfra verifier's count where the scenario verifies with testinfra.
SCENARIOS = {
    "platform": ["idempotence"],
    "platform_systemd": ["idempotence", "6 passed"],
    "project": ["idempotence", "4 passed"],
    "deploy": ["4 passed"],
    "pipeline": ["idempotence", "4 passed"],
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_molecule_scenario(scenario):
    bin_dir = os.path.dirname(sys.executable)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path(), LXDCTL_PYTHON=sys.executable,
               PATH=bin_dir + os.pathsep + os.environ["PATH"], ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               PY_COLORS="0")
    proc = subprocess.run([os.path.join(bin_dir, "molecule"), "test", "-s", scenario], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=1800)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]
    for marker in SCENARIOS[scenario]:
        assert marker in output.lower(), "%r missing from the %s scenario's output" % (marker, scenario)

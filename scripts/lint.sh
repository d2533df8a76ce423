#!/usr/bin/env bash
# ansible-lint (production profile) over the collection, offline, with a private HOME so
# it lints this checkout and not a copy it installed earlier.
#
# With LXDCTL_SANITY=1, also `ansible-test sanity` on a copy of the collection.  It is not
# on by default: from a fresh venv it takes longer than CI's budget for it allows (its own
# venvs are built from PyPI); see changelogs/fragments/rough-edges.yml.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
cd "$here"
# Resolve lxdctl.platform.* through the same collection path the CLI gives Ansible.
ANSIBLE_COLLECTIONS_PATH=$(python -c 'from lxdctl.collection import collections_path; print(collections_path())')
export ANSIBLE_COLLECTIONS_PATH
HOME="$home" ansible-lint --offline --nocolor --profile production playbooks roles

if [ "${LXDCTL_SANITY:-0}" != "1" ]; then
    exit 0
fi

# ansible-test wants the collection at ansible_collections/<namespace>/<name>; the copy holds
# what the wheel ships (setup.py COLLECTION_PARTS) plus changelogs and tests/sanity.  The
# pytest suites in tests/unit and tests/integration test the CLI too and are not
# ansible-test unit tests, so they stay out.
tree="$home/sanity"
dest="$tree/ansible_collections/lxdctl/platform"
mkdir -p "$dest"
git ls-files -co --exclude-standard -z -- galaxy.yml README.md meta plugins roles playbooks inventories \
    changelogs tests/sanity | while IFS= read -r -d '' file; do
    # tracked files deleted in the working tree are listed too
    if [ -f "$file" ]; then printf '%s\0' "$file"; fi
done | xargs -0 cp --parents -t "$dest" --

# ansible-test keeps its sanity venvs (keyed by their pinned requirements) under
# ~/.ansible/test/venv, so its HOME persists between runs; only the first run builds them.
test_home=${LXDCTL_SANITY_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/lxdctl/ansible-test-home}
# Its pip bootstrap script comes from a host this machine cannot reach; a stand-in that
# bootstraps pip with ensurepip, then installs what ansible-test asks for from PyPI.
# ensurepip's setuptools and wheel are kept (pip refuses --no-setuptools/--no-wheel).
pip_version=$(python -c 'import sys, types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="%d.%d" % sys.version_info[:2]))["pip"])')
mkdir -p "$test_home/.ansible/test/cache" "$test_home/output"
# ansible-test's own venv lives in the collection's tests/output: keep it with the others.
ln -s "$test_home/output" "$dest/tests/output"
cat >"$test_home/.ansible/test/cache/get_pip_${pip_version//./_}.py" <<'EOF'
import ensurepip
import subprocess
import sys

ensurepip.bootstrap()
args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
subprocess.check_call([sys.executable, "-m", "pip", "install", "--cert", "/etc/ssl/certs/ca-certificates.crt"] + args)
EOF

# tests/sanity/ignore-<ansible version>.txt holds only what the design rules out:
# - validate-modules:missing-gplv3-license - the project is Apache-2.0 (galaxy.yml), not GPL.
# - validate-modules:doc-type-does-not-match-spec, doc-elements-mismatch and
#   invalid-ansiblemodule-schema (on elements=) - names, domains, ports and sizes are
#   checked by the one rule of module_utils/_names.py, passed as the argument_spec type= or
#   elements= (a callable), so the documented str/int and the callable differ by design.
# - pylint:duplicate-except in module_utils/_lxd.py - without pylxd the exception names
#   fall back to Exception, so that the module still imports and reports the missing
#   library as a readable failure.
# Everything else sanity finds is for fixing, not for this file.  An entry that matches
# nothing fails sanity's own "ignores" test: a module removed or renamed takes its lines along.
python_version=$(python -c 'import sys; print("%d.%d" % sys.version_info[:2])')
(cd "$dest" && HOME="$test_home" ansible-test sanity --venv --python "$python_version" --color no)

#!/usr/bin/env bash
# The README's second command: set up what the tests need, then run the whole suite.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
export LXDCTL_VENV=${LXDCTL_VENV:-/opt/lxdctl/test-venv}
export LXDCTL_EXTRAS=test
rm -rf "$LXDCTL_VENV"  # a fresh venv every time, as a new user gets
scripts/install.sh
export PATH="$LXDCTL_VENV/bin:$PATH"

# The test platform: NAT off and pebble on, since nothing outside this host is reachable.
lxdctl init --yes --no-nat --with-pebble

status=0
python -m pytest -p no:cacheprovider -q --durations=30 tests/unit tests/integration || status=$?
scripts/lint.sh || status=$?
exit $status

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

# The unit tests and the lint need no service and touch nothing the integration tests use, so
# they run beside them: the integration tests spend most of their time waiting on containers
# and daemons, which leaves a core free.  Their output follows the integration tests' output.
side=$(mktemp -d)
trap 'rm -rf "$side"' EXIT
(
    rc=0
    python -m pytest -p no:cacheprovider -q --durations=10 tests/unit > "$side/unit.log" 2>&1 || rc=1
    scripts/lint.sh > "$side/lint.log" 2>&1 || rc=1
    exit $rc
) &
side_pid=$!

status=0
python -m pytest -p no:cacheprovider -q --durations=30 tests/integration || status=$?
side_status=0
wait "$side_pid" || side_status=$?
echo "=== unit tests (run beside the integration tests)"
cat "$side/unit.log"
echo "=== lint"
cat "$side/lint.log"
[ "$side_status" -eq 0 ] || status=1
exit $status

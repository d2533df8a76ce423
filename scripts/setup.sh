#!/usr/bin/env bash
# The README's first command: set up this host and run the main job.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install.sh"
lxdctl init --yes "$@"
lxdctl platform status

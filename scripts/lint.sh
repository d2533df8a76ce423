#!/usr/bin/env bash
# ansible-lint (production profile) over the collection, offline, with a private HOME so
# it lints this checkout and not a copy it installed earlier.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
cd "$here"
HOME="$home" ansible-lint --offline --profile production playbooks roles

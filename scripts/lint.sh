#!/usr/bin/env bash
# ansible-lint (production profile) over the collection, offline, with a private HOME so
# it lints this checkout and not a copy it installed earlier.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
cd "$here"
# Resolve lxdctl.platform.* through the same collection path the CLI gives Ansible.
ANSIBLE_COLLECTIONS_PATH=$(python -c 'from lxdctl.collection import collections_path; print(collections_path())')
export ANSIBLE_COLLECTIONS_PATH
HOME="$home" ansible-lint --offline --nocolor --profile production playbooks roles

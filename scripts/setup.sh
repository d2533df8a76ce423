#!/usr/bin/env bash
# The README's first command: set up this host and run the main job.
#   LXDCTL_SAMPLE_PROJECT  name of the sample project to create (default hello; empty: none)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/install.sh"
lxdctl init --yes "$@"
lxdctl platform status

# A sample project with PostgreSQL and Redis, deployed from samples/python-hello.  The
# create is idempotent (a rerun completes a half-made project, changes nothing on a whole
# one); each deploy is a new release.
sample=${LXDCTL_SAMPLE_PROJECT-hello}
if [ -n "$sample" ]; then
  lxdctl create "$sample" --db postgres --cache redis --runtime python
  lxdctl deploy "$sample" --path "$here/samples/python-hello"
  url=$(lxdctl status "$sample" --output json | python3 -c 'import json, sys; print(json.load(sys.stdin)["url"])')
  host=${url#*://}
  echo
  echo "sample project $sample: $url"
  echo "  (its name is served by this host's PowerDNS: dig @127.0.0.1 -p 5300 $host;"
  echo "   try: curl --resolve $host:80:127.0.0.1 $url)"
fi

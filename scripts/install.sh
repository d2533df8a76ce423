#!/usr/bin/env bash
# Installs what lxdctl needs on a Debian 12 host: the Debian packages of the platform and a
# virtualenv with lxdctl itself.  Safe to rerun: it installs only what is missing.
#   LXDCTL_VENV   where the virtualenv goes (default /opt/lxdctl/venv)
#   LXDCTL_EXTRAS pip extras to add, e.g. "test"
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
venv=${LXDCTL_VENV:-/opt/lxdctl/venv}
extras=${LXDCTL_EXTRAS:-}

packages=(
  python3 python3-venv python3-dev git curl ca-certificates sqlite3 iproute2 cron
  lxd lxd-client iptables dnsmasq-base btrfs-progs squashfs-tools debootstrap
  pdns-server pdns-backend-sqlite3 dnsutils
  postgresql mariadb-server redis-server memcached nginx pebble
)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  apt-get update -q
  # policy-rc.d keeps package scripts from starting daemons: the platform role starts them.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  rm -f /usr/sbin/policy-rc.d
fi

if [ ! -x "$venv/bin/python" ]; then
  /usr/bin/python3 -m venv "$venv"
fi
spec="$here"
[ -n "$extras" ] && spec="$here[$extras]"
"$venv/bin/pip" install -q --disable-pip-version-check "$spec"
ln -sf "$venv/bin/lxdctl" /usr/local/bin/lxdctl
echo "lxdctl $("$venv/bin/lxdctl" --version | awk '{print $NF}') installed in $venv"

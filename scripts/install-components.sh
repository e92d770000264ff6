#!/usr/bin/env bash
# Installs the real components the tests start (browser, databases, toolchains) when they are
# missing and this user can: as root, `apt-get update` once, then `apt-get install -y` of what is
# missing. Anyone else gets one line naming what is missing; those tests then skip with one line
# (under CI=true they fail instead).
# Usage: scripts/install-components.sh DEBIAN_PACKAGE...
set -uo pipefail

missing=()
for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "components: not installed (needs root and apt-get): ${missing[*]}; their tests will skip" >&2
    exit 0
fi
echo "components: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get update -qq >/dev/null 2>&1; then
    echo "components: apt-get update failed; ${missing[*]} not installed" >&2
    exit 0
fi
if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >/tmp/modelbox-apt.log 2>&1; then
    echo "components: apt-get install failed (see /tmp/modelbox-apt.log): ${missing[*]}" >&2
fi
exit 0

#!/usr/bin/env bash
# Installs what render-dispatch needs on a Debian 12 machine with Node 20 and npm, skipping
# whatever is already there: Debian packages (a C++ toolchain and GL headers for headless-gl's
# source build, Xvfb, PostgreSQL for the shared lease store; Chromium for the tests), Bun from npm,
# then the project's packages. PostgreSQL is installed without a cluster of its own: the tests and
# `bun run demo --postgres` start throwaway ones, and nothing here starts a system service.
#   bash scripts/setup.sh demo   what the demo needs
#   bash scripts/setup.sh test   that, plus Chromium for the browser tests
set -euo pipefail
cd "$(dirname "$0")/.."

purpose=${1:-demo}
packages=(build-essential python3 pkg-config libxi-dev libglu1-mesa-dev libglew-dev xvfb postgresql)
[[ $purpose == test ]] && packages+=(chromium)

say() { echo "setup: $*"; }
as_root() { if [[ $(id -u) == 0 ]]; then "$@"; else sudo "$@"; fi; }

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  # PostgreSQL's packages would make and start a "main" cluster: no system service is wanted.
  if [[ " ${missing[*]} " == *" postgresql "* && ! -e /etc/postgresql-common/createcluster.conf ]]; then
    as_root mkdir -p /etc/postgresql-common
    echo 'create_main_cluster = false' | as_root tee /etc/postgresql-common/createcluster.conf >/dev/null
  fi
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
fi

# Bun, at the version package.json names, from the npm registry.
want_bun=$(node -p "require('./package.json').packageManager.split('@')[1]")
if [[ $(bun --version 2>/dev/null || true) != "$want_bun" ]]; then
  say "installing bun $want_bun from npm"
  as_root npm install -g --no-fund --no-audit "bun@$want_bun" >/dev/null
fi

# headless-gl has no reachable prebuilt binary here, so it compiles from source (a few minutes,
# once) against Node's own headers in /usr.
if [[ ! -f node_modules/gl/build/Release/webgl.node || bun.lock -nt node_modules/.setup-done ]]; then
  say "installing packages (bun install; the first run compiles headless-gl)"
  npm_config_nodedir=/usr bun install --frozen-lockfile
  touch node_modules/.setup-done
fi

if ! node -e "require('gl')" 2>/dev/null; then
  echo "setup: headless-gl is installed but does not load in $(node --version); rebuild it with:" >&2
  echo "  rm -rf node_modules && bash scripts/setup.sh $purpose" >&2
  exit 1
fi
say "ready ($purpose)"

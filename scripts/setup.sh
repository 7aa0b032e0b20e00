#!/usr/bin/env bash
# Sets up a fresh Debian machine with Node 20 to build, run and test kangaroo.
# Idempotent: skips what is already there. Run as root (or with sudo available).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'setup: %s\n' "$*" >&2; }

# Debian packages: libfuse2 (the library fuse-native loads), fuse (fusermount),
# a C compiler and make (the native/ preload shim), iproute2 (test network namespaces).
DEBS=(fuse libfuse2 gcc make iproute2)
missing=()
for p in "${DEBS[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  say "installing npm packages"
  npm ci --no-audit --no-fund --loglevel=error
fi

say "building native parts (native/)"
node scripts/build-native.cjs
say "building"
npm run --silent build
chmod +x dist/cli/main.js
say "ready: node dist/cli/main.js --help (or npx kangaroo --help)"

#!/usr/bin/env bash
# Builds the prebuilt addons that ship in the package, where node-gyp-build
# looks for them: prebuilds/<platform>-<arch>/rxredirect[.glibc].node. The addon
# uses N-API only, so one binary per platform and architecture serves every
# Node version the package supports.
#
#   npm run build:prebuilds [-- linux-x64 linux-arm64 win32-x64]   (default: all three)
#
# (Not named "prebuild": npm would run a script of that name before every
# `npm run build`, and so on every `npm ci`.)
#
# linux-x64: prebuildify with the host g++; linux-arm64: prebuildify with
# Debian's aarch64 cross compiler; win32-x64: scripts/cross-compile-windows.sh
# (mingw-w64). All from Node's local headers (npm_config_nodedir, default /usr),
# never downloaded. The developer build in build/ is left alone: prebuildify
# runs in scratch copies of binding.gyp and native/. The targets build side by
# side; each one's log is printed when it fails.
#
# No musl build: Debian has no musl C++ toolchain (musl-tools wraps only the C
# compiler), so on musl (Alpine) `npm install` builds from source.
#
# PREBUILD_OUT: where prebuilds/ goes (default: the package root).
# Exit status: 0 built, 1 build failure, 2 toolchain or headers missing.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${PREBUILD_OUT:-$ROOT}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

if [ -z "${npm_config_nodedir:-}" ] && [ -f /usr/include/node/node_api.h ]; then
  export npm_config_nodedir=/usr
fi
[ -f "${npm_config_nodedir:-}/include/node/node_api.h" ] || {
  echo "missing Node headers: set npm_config_nodedir to a directory with include/node/node_api.h" >&2
  exit 2
}
# The headers' version is the one node-gyp is told to build for; with nodedir set it fetches
# nothing, and a dead download URL makes sure a fetch would fail at once instead of going out.
NODE_TARGET=$(node -p 'process.versions.node')
export npm_config_disturl=http://127.0.0.1:9/no-downloads

TARGETS=("$@")
[ "${#TARGETS[@]}" -gt 0 ] || TARGETS=(linux-x64 linux-arm64 win32-x64)

need() {
  command -v "$1" >/dev/null || { echo "missing $1: apt-get install -y $2" >&2; exit 2; }
}
for target in "${TARGETS[@]}"; do
  case "$target" in
  linux-x64) need g++ g++ ;;
  linux-arm64) need aarch64-linux-gnu-g++ g++-aarch64-linux-gnu ;;
  win32-x64) need x86_64-w64-mingw32-strip g++-mingw-w64-x86-64 ;;
  *) echo "unknown target $target (linux-x64, linux-arm64, win32-x64)" >&2; exit 2 ;;
  esac
done

scratch=$(mktemp -d "${TMPDIR:-/tmp}/rxredirect-prebuild-XXXXXX")
trap 'rm -rf "$scratch"' EXIT
# node-gyp's make uses every core (the targets also build side by side).
export JOBS=max

# prebuildify: node-gyp rebuild in a scratch copy of the sources, then the
# stripped binary is copied to $OUT/prebuilds/linux-<arch>/rxredirect.glibc.node
# (the libc tag keeps node-gyp-build from offering a glibc binary on musl).
prebuildify() {
  local dir="$scratch/$target"
  mkdir -p "$dir"
  cp -r package.json binding.gyp native "$dir/"
  ln -s "$ROOT/node_modules" "$dir/node_modules"
  (cd "$dir" && node "$ROOT/node_modules/prebuildify/bin.js" \
    --napi --strip --tag-libc --target="$NODE_TARGET" --out "$dir/out" "$@")
  mkdir -p "$OUT/prebuilds/$target"
  cp "$dir/out/prebuilds/$target/"*.node "$OUT/prebuilds/$target/"
}

build() {
  case "$target" in
  linux-x64)
    CC=gcc CXX=g++ prebuildify --arch x64
    ;;
  linux-arm64)
    CC=aarch64-linux-gnu-gcc CXX=aarch64-linux-gnu-g++ LINK=aarch64-linux-gnu-g++ \
      prebuildify --arch arm64 --strip-bin aarch64-linux-gnu-strip
    ;;
  win32-x64)
    MINGW_OPT=-O2 bash scripts/cross-compile-windows.sh "$scratch/win32-x64"
    mkdir -p "$OUT/prebuilds/win32-x64"
    # node-gyp-build's name for an N-API build with no other tags.
    x86_64-w64-mingw32-strip -o "$OUT/prebuilds/win32-x64/rxredirect.node" "$scratch/win32-x64/rxredirect.node"
    ;;
  esac
  echo "built $(cd "$OUT" && ls prebuilds/"$target"/*.node)"
}

pids=()
for target in "${TARGETS[@]}"; do
  rm -rf "${OUT:?}/prebuilds/$target"
  build >"$scratch/$target.log" 2>&1 &
  pids+=($!)
done
failed=0
for i in "${!TARGETS[@]}"; do
  status=0
  wait "${pids[$i]}" || status=$?
  if [ "$status" -ne 0 ]; then
    echo "== prebuild ${TARGETS[$i]}: FAILED (exit $status)"
    cat "$scratch/${TARGETS[$i]}.log"
    failed=1
  else
    echo "== prebuild ${TARGETS[$i]}: $(tail -n 1 "$scratch/${TARGETS[$i]}.log")"
  fi
done
[ "$failed" -eq 0 ] || exit 1

(cd "$OUT" && find prebuilds -type f -name '*.node' -exec ls -l {} + | awk '{ print $5, $NF }')

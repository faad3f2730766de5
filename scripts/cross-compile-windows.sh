#!/usr/bin/env bash
# Cross-compiles the addon for Windows x64 with mingw-w64 from Linux: every
# source binding.gyp builds on Windows (the portable ones and OS=='win'), then
# links rxredirect.node against an import library for node.exe's N-API exports
# generated from Node's own headers. A compile check, not a release build
# (release builds use MSVC through node-gyp on Windows; see docs/windows.md).
#
#   scripts/cross-compile-windows.sh [out-dir]     (default build/win32-x64)
#
# MINGW_OPT overrides -O2 (the test uses -O0: it checks, it does not ship).
# Needs: g++-mingw-w64-x86-64 (Debian), Node headers in $NODE_INCLUDE
# (default /usr/include/node), node-addon-api installed.
# Exit status: 0 built, 1 compile/link failure, 2 toolchain missing.
set -euo pipefail
cd "$(dirname "$0")/.."

CXX=${MINGW_CXX:-x86_64-w64-mingw32-g++-posix}
DLLTOOL=${MINGW_DLLTOOL:-x86_64-w64-mingw32-dlltool}
OBJDUMP=${MINGW_OBJDUMP:-x86_64-w64-mingw32-objdump}
NODE_INCLUDE=${NODE_INCLUDE:-/usr/include/node}
OUT=${1:-build/win32-x64}

for tool in "$CXX" "$DLLTOOL"; do
  command -v "$tool" >/dev/null || { echo "missing $tool: apt-get install -y g++-mingw-w64-x86-64" >&2; exit 2; }
done
[ -f "$NODE_INCLUDE/node_api.h" ] || { echo "missing Node headers in $NODE_INCLUDE" >&2; exit 2; }
NAPI_INCLUDE=$(node -p "require('path').dirname(require.resolve('node-addon-api/napi.h'))")

# The Windows source list, straight from binding.gyp (gyp files are Python
# literals; ours is JSON once '#' comments are dropped).
mapfile -t SOURCES < <(node -e '
  const text = require("fs").readFileSync("binding.gyp", "utf8").replace(/^\s*#.*$/gm, "");
  const target = JSON.parse(text).targets[0];
  const sources = [...target.sources];
  for (const [cond, extra] of target.conditions ?? []) {
    if (/OS\s*==\s*.win./.test(cond)) sources.push(...(extra.sources ?? []));
  }
  console.log(sources.join("\n"));
')

mkdir -p "$OUT/obj"
CXXFLAGS=(-std=c++17 "${MINGW_OPT:--O2}" -Wall -Wextra -fexceptions
  -DNAPI_VERSION=8 -DNAPI_CPP_EXCEPTIONS -DBUILDING_NODE_EXTENSION -D_WIN32_WINNT=0x0A00
  -I"$NODE_INCLUDE" -I"$NAPI_INCLUDE")

objects=()
for src in "${SOURCES[@]}"; do
  obj="$OUT/obj/$(echo "${src%.cc}" | tr '/' '_').o"
  echo "CXX $src"
  "$CXX" "${CXXFLAGS[@]}" -c "$src" -o "$obj"
  objects+=("$obj")
done

# node.exe exports N-API itself; mingw needs an import library naming it.
# Every NAPI_EXTERN function in Node's headers goes into a .def file.
{
  echo "LIBRARY node.exe"
  echo "EXPORTS"
  printf '#include <node_api.h>\n' |
    "$CXX" -E -P -x c++ -DNAPI_EXPERIMENTAL -DNAPI_EXTERN=__rx_napi_export__ -I"$NODE_INCLUDE" - |
    tr '\n' ' ' | grep -oE '__rx_napi_export__[^;{]*\(' | grep -oE '[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\($' |
    tr -d '( ' | sort -u
} >"$OUT/node.def"
"$DLLTOOL" -d "$OUT/node.def" -l "$OUT/libnode.a"
echo "import library: $(($(wc -l <"$OUT/node.def") - 2)) N-API functions"

# -static: libstdc++, libgcc and winpthread go inside the DLL, so it needs
# nothing beyond node.exe and system DLLs.
"$CXX" -shared -static -o "$OUT/rxredirect.node" "${objects[@]}" "$OUT/libnode.a" -lws2_32
echo "linked $OUT/rxredirect.node"
if command -v "$OBJDUMP" >/dev/null; then
  echo "imports: $("$OBJDUMP" -p "$OUT/rxredirect.node" | awk '/DLL Name:/ { printf "%s ", $3 }')"
fi

#!/usr/bin/env bash
# Prepares, on a machine with Node.js and the repo's node_modules, the folder .gpu/ at the repo root
# (ignored by git) that scripts/gpu-check.sh needs on a GPU machine with nvcc and Python but no
# Node.js and no registry:
#   .gpu/node/bin/node.xz           this machine's node binary, xz-compressed (gpu-check.sh unpacks it
#                                   with xz, or with Python's lzma where xz is missing); node.sha256 names
#                                   the binary it holds, so a later run reuses it instead of compressing again
#   .gpu/node/include/node/*.h      the N-API C headers (so the addon compiles there)
#   .gpu/node-addon-api/            node-addon-api's C++ headers
#   .gpu/node_modules/@alexnet/{tensor,layers,optim,cuda}   package.json + dist, transpiled here from
#                                   the sources (scripts/gpu/transpile.cjs: JavaScript only, no type checks)
#   .gpu/node_modules/@alexnet/train  trainStep alone (src/step.ts): what the timing times
#   .gpu/node_modules/@alexnet/cuda/build/Release   the emulated addon (gpu-check.sh --emulated)
#   .gpu/node_modules/vitest/       a small stand-in for vitest, so the conformance suite runs
# The runners (scripts/gpu/*.mjs) are copied in by gpu-check.sh itself on each run, so they are never
# stale. The bundle must stay under 64 MiB in all (what a device run carries): the size is printed,
# and over 64 MiB is an error.
#   bash packages/cuda/scripts/prepare-gpu-bundle.sh && bash packages/cuda/scripts/gpu-check.sh --emulated
# --if-stale: nothing to do when .gpu/stamp says the bundle was made from the same sources and node.
# ALEXNET_GPU_BUNDLE_XZ=1..9: xz's preset for node (6 by default; 1 is about 4x faster, 5 MiB larger).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PKG=$ROOT/packages/cuda
OUT=$ROOT/.gpu
LIMIT_MIB=64
t0=$(date +%s)
say() { echo "[gpu-bundle] $*"; }

NODE=$(command -v node)
NODE_SUM=$(sha256sum "$(readlink -f "$NODE")" | cut -d' ' -f1)
# what the bundle is made of: the sources it transpiles, the native sources of the emulated addon, these scripts
STAMP=$( (echo "$NODE_SUM"; cd "$ROOT" && find packages/tensor/src packages/layers/src packages/optim/src packages/cuda/src packages/train/src/step.ts \
  packages/{tensor,layers,optim,cuda}/package.json native/cuda native/common packages/cuda/scripts/prepare-gpu-bundle.sh packages/cuda/scripts/build.mjs \
  packages/cuda/scripts/gpu/transpile.cjs packages/cuda/scripts/gpu/vitest-shim.mjs -type f -printf '%p %s %T@\n' | sort) | sha256sum | cut -c1-64)
if [ "${1:-}" = "--if-stale" ] && [ "$(cat "$OUT/stamp" 2>/dev/null)" = "$STAMP" ] && [ -f "$OUT/node/bin/node.xz" ]; then
  say "$OUT is up to date ($(( ($(du -sb "$OUT" | cut -f1) + 1048575) / 1048576 )) MiB)"; exit 0
fi

# keep a node.xz of this very binary (compressing takes about a minute); everything else is rebuilt
KEEP=""
if [ -f "$OUT/node/bin/node.xz" ] && [ "$(cat "$OUT/node/bin/node.sha256" 2>/dev/null)" = "$NODE_SUM" ]; then
  KEEP=$(mktemp -d) && mv "$OUT/node/bin/node.xz" "$KEEP/"
fi
rm -rf "$OUT"
mkdir -p "$OUT/node/bin" "$OUT/node/include/node" "$OUT/node-addon-api" "$OUT/node_modules/@alexnet" "$OUT/node_modules/vitest"

# 1. the emulated addon here (gpu-check.sh --emulated); the GPU build happens on the GPU machine
(cd "$PKG" && node scripts/build.mjs --emu-only)

# 2. node and the headers the addon build needs
if [ -n "$KEEP" ]; then
  mv "$KEEP/node.xz" "$OUT/node/bin/" && rmdir "$KEEP"
  say "reusing the compressed node binary ($(node --version))"
else
  say "compressing $NODE ($(node --version))"
  if command -v xz >/dev/null; then
    xz -T0 -"${ALEXNET_GPU_BUNDLE_XZ:-6}" -c "$NODE" > "$OUT/node/bin/node.xz"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(open(sys.argv[1], "rb"), lzma.open(sys.argv[2], "wb", preset=int(sys.argv[3])))' "$NODE" "$OUT/node/bin/node.xz" "${ALEXNET_GPU_BUNDLE_XZ:-6}"
  fi
fi
echo "$NODE_SUM" > "$OUT/node/bin/node.sha256"
NODE_INC=$(node -e "
const {existsSync}=require('fs'),{join,resolve,dirname}=require('path');
const c=[join(resolve(dirname(process.execPath),'..'),'include','node'),'/usr/include/node','/usr/local/include/node'];
console.log(c.find(d=>existsSync(join(d,'node_api.h')))||'')")
[ -n "$NODE_INC" ] || { say "node_api.h not found"; exit 1; }
for h in node_api.h node_api_types.h js_native_api.h js_native_api_types.h; do cp "$NODE_INC/$h" "$OUT/node/include/node/"; done
NAPI=$(cd "$ROOT" && node -p "require('path').dirname(require.resolve('node-addon-api/package.json'))")
cp "$NAPI"/napi.h "$NAPI"/napi-inl.h "$NAPI"/package.json "$OUT/node-addon-api/"
[ -f "$NAPI/napi-inl.deprecated.h" ] && cp "$NAPI/napi-inl.deprecated.h" "$OUT/node-addon-api/"

# 3. the JavaScript, transpiled from the sources straight into the bundle (scripts/gpu/transpile.cjs)
for p in tensor layers optim cuda; do
  D=$OUT/node_modules/@alexnet/$p
  mkdir -p "$D" && cp "$ROOT/packages/$p/package.json" "$D/"
  node "$PKG/scripts/gpu/transpile.cjs" "$ROOT" "$ROOT/packages/$p" "$D"
done
# @alexnet/train: trainStep only (the rest of the package needs the data pipeline, not carried)
D=$OUT/node_modules/@alexnet/train
mkdir -p "$D"
echo '{ "name": "@alexnet/train", "version": "0.0.0-gpu-bundle", "type": "module", "exports": "./dist/step.js" }' > "$D/package.json"
node "$PKG/scripts/gpu/transpile.cjs" "$ROOT" "$ROOT/packages/train" "$D" step.ts
mkdir -p "$OUT/node_modules/@alexnet/cuda/build/Release"
cp "$PKG/build/Release/alexnet_cuda_emu.node" "$PKG/build/Release/build-info.json" "$OUT/node_modules/@alexnet/cuda/build/Release/"

# 4. the test runner's stand-in for vitest
cp "$PKG/scripts/gpu/vitest-shim.mjs" "$OUT/node_modules/vitest/index.js"
echo '{ "name": "vitest", "version": "0.0.0-shim", "type": "module", "exports": "./index.js" }' > "$OUT/node_modules/vitest/package.json"

echo "$STAMP" > "$OUT/stamp"
BYTES=$(du -sb "$OUT" | cut -f1)
SIZE=$(( (BYTES + 1048575) / 1048576 ))
say "wrote $OUT: ${SIZE} MiB in all (limit ${LIMIT_MIB} MiB; node.xz $(( $(stat -c %s "$OUT/node/bin/node.xz") / 1048576 )) MiB) in $(( $(date +%s) - t0 )) s"
if [ "$SIZE" -ge "$LIMIT_MIB" ]; then say "the bundle is ${SIZE} MiB, over the ${LIMIT_MIB} MiB a device run carries"; exit 1; fi

#!/usr/bin/env bash
# Prepares, on a machine with Node.js and the repo's node_modules, the folder .gpu/ at the repo root
# (ignored by git) that scripts/gpu-check.sh needs on a GPU machine with nvcc and Python but no
# Node.js and no registry:
#   .gpu/node/bin/node.xz           this machine's node binary, xz-compressed
#   .gpu/node/include/node/*.h      the N-API C headers (so the addon compiles there)
#   .gpu/node-addon-api/            node-addon-api's C++ headers
#   .gpu/node_modules/@alexnet/{tensor,layers,optim,train,cuda}   package.json + dist (compiled here, no
#                                   .d.ts): @alexnet/train's benchmark times the training step (trainStep)
#   .gpu/node_modules/@alexnet/cuda/build/Release     the emulated addon (a smoke test without a GPU)
#   .gpu/node_modules/vitest/       a small stand-in for vitest, so the conformance suite runs
#   .gpu/conformance.mjs            the suite's runner
#   .gpu/tf32.mjs                   node --import hook: the cuda backends with TF32 on (the training step in TF32)
# Carry it with the working tree (it must stay under 64 MiB; the script prints its size):
#   bash packages/cuda/scripts/prepare-gpu-bundle.sh && bash packages/cuda/scripts/gpu-check.sh --smoke
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
PKG=$ROOT/packages/cuda
OUT=$ROOT/.gpu
TSC=$ROOT/node_modules/.bin/tsc
t0=$(date +%s)

rm -rf "$OUT"
mkdir -p "$OUT/node/bin" "$OUT/node/include/node" "$OUT/node-addon-api" "$OUT/node_modules/@alexnet" "$OUT/node_modules/vitest"

# 1. the addons here (the emulated one travels for a smoke test; the GPU build happens there)
(cd "$PKG" && node scripts/build.mjs --emu-only)

# 2. node and the headers the addon build needs
NODE=$(command -v node)
echo "[gpu-bundle] compressing $NODE ($(node --version))"
xz -T1 -9 -c "$NODE" > "$OUT/node/bin/node.xz"
NODE_INC=$(node -e "
const {existsSync}=require('fs'),{join,resolve,dirname}=require('path');
const c=[join(resolve(dirname(process.execPath),'..'),'include','node'),'/usr/include/node','/usr/local/include/node'];
console.log(c.find(d=>existsSync(join(d,'node_api.h')))||'')")
[ -n "$NODE_INC" ] || { echo "[gpu-bundle] node_api.h not found"; exit 1; }
for h in node_api.h node_api_types.h js_native_api.h js_native_api_types.h; do cp "$NODE_INC/$h" "$OUT/node/include/node/"; done
NAPI=$(cd "$ROOT" && node -p "require('path').dirname(require.resolve('node-addon-api/package.json'))")
cp "$NAPI"/napi.h "$NAPI"/napi-inl.h "$NAPI"/package.json "$OUT/node-addon-api/"
[ -f "$NAPI/napi-inl.deprecated.h" ] && cp "$NAPI/napi-inl.deprecated.h" "$OUT/node-addon-api/"

# 3. the JavaScript: compiled from the sources straight into the bundle
for p in tensor layers optim train cuda; do
  [ -f "$ROOT/packages/$p/tsconfig.build.json" ] || { echo "[gpu-bundle] packages/$p missing: skipped"; continue; }
  D=$OUT/node_modules/@alexnet/$p
  mkdir -p "$D"
  cp "$ROOT/packages/$p/package.json" "$D/"
  echo "[gpu-bundle] compiling @alexnet/$p"
  "$TSC" -p "$ROOT/packages/$p/tsconfig.build.json" --outDir "$D/dist" --declaration false --declarationMap false --sourceMap false
done
mkdir -p "$OUT/node_modules/@alexnet/cuda/build/Release"
cp "$PKG/build/Release/alexnet_cuda_emu.node" "$PKG/build/Release/build-info.json" "$OUT/node_modules/@alexnet/cuda/build/Release/"

# 4. the test runner
cp "$PKG/scripts/gpu/vitest-shim.mjs" "$OUT/node_modules/vitest/index.js"
echo '{ "name": "vitest", "version": "0.0.0-shim", "type": "module", "exports": "./index.js" }' > "$OUT/node_modules/vitest/package.json"
cp "$PKG/scripts/gpu/conformance.mjs" "$OUT/conformance.mjs"
cp "$PKG/scripts/gpu/tf32.mjs" "$OUT/tf32.mjs"

SIZE=$(du -sm "$OUT" | cut -f1)
echo "[gpu-bundle] wrote $OUT: ${SIZE} MiB in $(( $(date +%s) - t0 )) s"
if [ "$SIZE" -ge 64 ]; then echo "[gpu-bundle] WARNING: over 64 MiB"; exit 1; fi

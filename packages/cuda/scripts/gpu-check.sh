#!/usr/bin/env bash
# The GPU check of @alexnet/cuda, in one call of at most 8 minutes, for a machine with an NVIDIA GPU
# (an H200), nvcc and Python with PyTorch (its cuDNN, cuBLAS and NCCL under site-packages nvidia/*/lib),
# but no Node.js, no xz and no network. Prepare .gpu/ first on a machine with Node.js
# (prepare-gpu-bundle.sh), carry it with the working tree, then from the repo root:
#
#   bash packages/cuda/scripts/gpu-check.sh              on the GPU machine
#   bash packages/cuda/scripts/gpu-check.sh --emulated   the same steps here, on 'cuda-emu' (no GPU):
#                                                        small sizes, PyTorch on the CPU if installed
#   (--smoke is the old name of --emulated)
#
# Steps (each with a time limit within the whole's; the log of each is kept in the folder printed
# first, ALEXNET_GPU_CHECK_DIR to choose it):
#   1. node from the bundle (xz, or Python's lzma where xz is missing)
#   2. build alexnet_cuda.node for sm_90 (ALEXNET_CUDA_ARCHS to change) with nvcc from the tree's
#      native/ sources and the bundle's headers, in a scratch package (the tree's build/ untouched);
#      on the GPU it is then installed into the bundle
#   3. the conformance suite natively on both paths at once: the vendor libraries (cuDNN, cuBLASLt) and
#      our own kernels (ALEXNET_CUDA_KERNELS=own), strict FP32, against the float64 reference
#   4. compute-sanitizer memcheck on a short case (our kernels, then the vendor path and racecheck of
#      our kernels if time is left)
#   5. one training step of the paper net (dropout off, batch 128) on both paths, strict FP32, against
#      PyTorch's float64 step from the same weights and batch (torch_validate.py)
#   6. the training step timed, the median of 20 steps after 5 of warm-up each: ours (vendor path;
#      TF32 everywhere; our own kernels; two logical devices for the two towers, §3.2) and PyTorch
#      (defaults; TF32 everywhere; channels_last with bf16 autocast)
#   7. the tables, last: the checks, then the timings
# --emulated: 'cuda-emu', the vendor path through the tests' stand-in libraries (compiled here with
# g++), batch 4 (validation) and 2 (timing) at 67 x 67, 1 warm-up and 2 timed steps (PyTorch 5), PyTorch on the
# CPU (/usr/bin/python3 or python3 with torch; without it the float64 reference of @alexnet/tensor
# validates and the PyTorch rows say "PyTorch not installed"); nvcc's build runs where nvcc is found.
# ALEXNET_GPU_CHECK_TORCH=0 leaves PyTorch out (as on a machine without it). Exit status 0 when every
# check passed.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
G=$ROOT/.gpu
PKG=$ROOT/packages/cuda
S=$PKG/scripts/gpu
MODE=gpu
case "${1:-}" in
  --emulated|--smoke) MODE=emu ;;
  "") ;;
  -h|--help) sed -n '2,32p' "${BASH_SOURCE[0]}"; exit 0 ;;
  *) echo "gpu-check.sh: unknown option '$1' (--emulated, or none for the GPU)"; exit 2 ;;
esac
T0=$(date +%s)
# the device call allows 8 minutes: 450 s for the steps. --emulated gives every limit twice as long
# (its steps are slower on 2 cores than the GPU's at full size)
K=$([ $MODE = gpu ] && echo 1 || echo 2)
BUDGET=${ALEXNET_GPU_CHECK_SECONDS:-$(( 450 * K ))}
elapsed() { echo $(( $(date +%s) - T0 )); }
step() { echo; echo "== $1   [$(elapsed) s]"; }
# cap WANT RESERVE: a step's time limit, WANT seconds (times K), or less so that RESERVE seconds (times K)
# stay for the steps after it; at least 10 s
cap() { local w=$(( $1 * K )) l=$(( BUDGET - $(elapsed) - $2 * K )); [ "$l" -lt "$w" ] && { [ "$l" -lt 10 ] && echo 10 || echo "$l"; } || echo "$w"; }
LOG=${ALEXNET_GPU_CHECK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/alexnet-gpu-check.XXXXXX")}
mkdir -p "$LOG" && rm -f "$LOG"/*.txt "$LOG"/*.safetensors
echo "gpu-check ($MODE): logs in $LOG"
cd "$ROOT"

if [ $MODE = gpu ]; then
  BACKEND=cuda; VBATCH=128; TBATCH=128; SIZE=227; WARMUP=5; REPS=20; CONF=(--random 4); TORCH_DEVICE=cuda
else
  BACKEND=cuda-emu; VBATCH=4; TBATCH=2; SIZE=67; WARMUP=1; REPS=2; CONF=(--quick --random 3); TORCH_DEVICE=cpu
fi
echo "{\"mode\": \"$MODE\", \"backend\": \"$BACKEND\", \"validateBatch\": $VBATCH, \"timeBatch\": $TBATCH, \"size\": $SIZE, \"warmup\": $WARMUP, \"reps\": $REPS}" > "$LOG/settings.json"

# Python: the one with PyTorch (ALEXNET_PYTHON, python3, /usr/bin/python3), else any (for the tables)
PY=""; TORCH_PY=""
for p in ${ALEXNET_PYTHON:-} python3 /usr/bin/python3; do
  command -v "$p" >/dev/null || continue
  [ -z "$PY" ] && PY=$p
  if [ -z "$TORCH_PY" ] && [ "${ALEXNET_GPU_CHECK_TORCH:-1}" != 0 ] && "$p" -c "import torch" 2>/dev/null; then TORCH_PY=$p; fi
done
[ -n "$PY" ] || { echo "gpu-check.sh needs python3 (for PyTorch, lzma and the tables), and none was found"; exit 1; }
if [ -n "$TORCH_PY" ]; then echo "PyTorch: $("$TORCH_PY" -c 'import torch; print(torch.__version__, "CUDA", torch.cuda.is_available())') ($TORCH_PY)";
else echo "PyTorch not installed (python3 or /usr/bin/python3 with torch): the float64 reference validates, no PyTorch timings"; fi

[ -d "$G" ] || { echo "no .gpu/ here: run packages/cuda/scripts/prepare-gpu-bundle.sh on a machine with Node.js first"; exit 1; }

step "1. node"
# unpacked outside .gpu/ (so the bundle stays small enough to carry), once per binary
SUM=$(cat "$G/node/bin/node.sha256" 2>/dev/null || echo unknown)
NODE_HOME=${TMPDIR:-/tmp}/alexnet-gpu-node-${SUM:0:12}
if [ ! -x "$NODE_HOME/bin/node" ]; then
  mkdir -p "$NODE_HOME/bin"
  if command -v xz >/dev/null && [ "${ALEXNET_GPU_CHECK_NO_XZ:-0}" != 1 ]; then
    echo "unpacking node with xz"; xz -dc "$G/node/bin/node.xz" > "$NODE_HOME/bin/node.part"
  else
    echo "unpacking node with Python's lzma (no xz here)"
    "$PY" -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"))' "$G/node/bin/node.xz" "$NODE_HOME/bin/node.part"
  fi
  chmod +x "$NODE_HOME/bin/node.part" && mv "$NODE_HOME/bin/node.part" "$NODE_HOME/bin/node"
fi
rm -rf "$NODE_HOME/include" && cp -r "$G/node/include" "$NODE_HOME/"   # build.mjs finds node_api.h beside the node binary
export PATH=$NODE_HOME/bin:$PATH
node --version | tee "$LOG/node.txt" || { echo "the bundle's node does not run here"; exit 1; }
# the runners, fresh from the tree, beside the bundle's node_modules (so that @alexnet/* resolve there)
cp "$S"/conformance.mjs "$S"/validate_step.mjs "$S"/time_step.mjs "$G/"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$LOG/gpu.txt"

step "2. build alexnet_cuda.node for sm_${ALEXNET_CUDA_ARCHS:-90} (nvcc, the bundle's headers)"
# a scratch package: build.mjs builds into <its package>/build/Release from <its package>/native
BUILD_PKG=${ALEXNET_GPU_CHECK_CACHE:-${TMPDIR:-/tmp}/alexnet-gpu-check-cache}/cuda
mkdir -p "$BUILD_PKG/scripts" && cp -p "$PKG/scripts/build.mjs" "$BUILD_PKG/scripts/" && cp -p "$PKG/package.json" "$BUILD_PKG/"
ln -sfn "$ROOT/native" "$BUILD_PKG/native"
if command -v nvcc >/dev/null || [ -n "${NVCC:-}" ] || [ -x /usr/local/cuda/bin/nvcc ]; then
  ALEXNET_CUDA_ARCHS=${ALEXNET_CUDA_ARCHS:-90} ALEXNET_NAPI_INCLUDE=$G/node-addon-api ALEXNET_BUILD_JOBS=${ALEXNET_BUILD_JOBS:-8} \
    timeout "$(cap 200 260)" node "$BUILD_PKG/scripts/build.mjs" --cuda-only 2>&1 | tee "$LOG/build.log" | grep -v "^\s*$"
  BUILD_RC=${PIPESTATUS[0]}
  node -e "
const fs = require('fs'), p = process.argv[1] + '/build/Release/build-info.json';
const i = fs.existsSync(p) ? JSON.parse(fs.readFileSync(p, 'utf8')).cuda ?? {} : {};
console.log('BUILD ' + JSON.stringify({ rc: Number(process.argv[2]), ...i }));" "$BUILD_PKG" "$BUILD_RC" > "$LOG/build.txt"
  if [ $MODE = gpu ] && [ "$BUILD_RC" = 0 ]; then
    R=$G/node_modules/@alexnet/cuda/build/Release
    cp "$BUILD_PKG/build/Release/alexnet_cuda.node" "$R/"
    # keep the emulated addon's record, take the GPU build's (archs, vendor header check)
    node -e "
const fs = require('fs'), [dst, src] = process.argv.slice(1);
const a = fs.existsSync(dst) ? JSON.parse(fs.readFileSync(dst, 'utf8')) : {};
a.cuda = JSON.parse(fs.readFileSync(src, 'utf8')).cuda;
fs.writeFileSync(dst, JSON.stringify(a, null, 2) + '\n');" "$R/build-info.json" "$BUILD_PKG/build/Release/build-info.json"
  fi
else
  echo "nvcc not found"
  echo "BUILD {\"rc\": 127, \"built\": false, \"reason\": \"nvcc not found\"}" > "$LOG/build.txt"
fi

# --emulated: the vendor path through the tests' stand-in cuDNN and cuBLASLt (nothing of NVIDIA's)
VENDOR_ENV=()
if [ $MODE = emu ]; then
  SD=$LOG/standin
  mkdir -p "$SD"
  if g++ -std=c++17 -O2 -shared -fPIC -DSTANDIN_CUDNN -I"$ROOT/native/cuda/vendor" "$PKG/test/standin/vendor_standin.cpp" -o "$SD/libcudnn.so.9" \
    && g++ -std=c++17 -O2 -shared -fPIC -DSTANDIN_CUBLASLT -I"$ROOT/native/cuda/vendor" "$PKG/test/standin/vendor_standin.cpp" -o "$SD/libcublasLt.so.12"; then
    VENDOR_ENV=(ALEXNET_CUDNN_PATH="$SD" ALEXNET_CUBLASLT_PATH="$SD/libcublasLt.so.12")
    echo "the vendor path runs on the stand-in libraries in $SD"
  else
    echo "the stand-in libraries did not build: the 'vendor' runs fall back to our kernels (and say so)"
  fi
fi
# vendor|own [VAR=value ...] command ...: the command on the vendor path, or on our own kernels
vendor() { env ${VENDOR_ENV[@]+"${VENDOR_ENV[@]}"} "$@"; }
own() { env ALEXNET_CUDA_KERNELS=own "$@"; }

step "3. the conformance suite on $BACKEND, vendor path and own kernels at once (strict FP32, against the float64 reference)"
T=$(cap 120 200)
vendor ALEXNET_CUDA_PRECISION=strict timeout "$T" node "$G/conformance.mjs" --backend $BACKEND "${CONF[@]}" > "$LOG/conformance-vendor.txt" 2>&1 &
P1=$!
own ALEXNET_CUDA_PRECISION=strict timeout "$T" node "$G/conformance.mjs" --backend $BACKEND "${CONF[@]}" > "$LOG/conformance-own.txt" 2>&1 &
P2=$!
wait $P1; echo "exit $?" >> "$LOG/conformance-vendor.txt"
wait $P2; echo "exit $?" >> "$LOG/conformance-own.txt"
for p in vendor own; do grep -E "^  FAIL|^conformance|^exit" "$LOG/conformance-$p.txt" | sed "s/^/  [$p] /" | head -40; done

step "4. compute-sanitizer memcheck on a short case"
# on PATH, beside nvcc (the toolkit's bin/ and compute-sanitizer/), or in the usual toolkit folders
NVCC_BIN=$(dirname "$(readlink -f "$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)")")
SAN=$(command -v compute-sanitizer || ls "$NVCC_BIN/compute-sanitizer" "$NVCC_BIN/../compute-sanitizer/compute-sanitizer" \
  /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
if [ $MODE = emu ]; then
  echo "compute-sanitizer needs a GPU; the same short case runs on $BACKEND without it"
  own timeout "$(cap 60 160)" node "$G/conformance.mjs" --backend $BACKEND --quick --random 1 > "$LOG/memcheck-own.txt" 2>&1
  echo "exit $?" >> "$LOG/memcheck-own.txt"; echo "no sanitizer: emulated" >> "$LOG/memcheck-own.txt"; tail -3 "$LOG/memcheck-own.txt"
elif [ -n "$SAN" ]; then
  echo "$SAN"
  for p in own vendor; do
    T=$(cap 60 160)
    if [ "$p" = vendor ] && [ "$T" -lt $(( 40 * K )) ]; then echo "memcheck of the vendor path: skipped, too little time left" > "$LOG/memcheck-$p.txt"; continue; fi
    $p ALEXNET_CUDA_PRECISION=strict timeout -k 10 "$T" "$SAN" --tool memcheck --error-exitcode 99 node "$G/conformance.mjs" --backend cuda --quick --random 1 > "$LOG/memcheck-$p.txt" 2>&1
    echo "exit $?" >> "$LOG/memcheck-$p.txt"; echo "[$p]"; tail -4 "$LOG/memcheck-$p.txt"
  done
  # racecheck: shared-memory hazards between barriers, which the emulation cannot see (our kernels)
  T=$(cap 60 160)
  if [ "$T" -ge $(( 40 * K )) ]; then
    own timeout -k 10 "$T" "$SAN" --tool racecheck --error-exitcode 99 node "$G/conformance.mjs" --backend cuda --quick --random 1 > "$LOG/racecheck-own.txt" 2>&1
    echo "exit $?" >> "$LOG/racecheck-own.txt"; echo "[racecheck, own]"; tail -4 "$LOG/racecheck-own.txt"
  fi
else
  echo "compute-sanitizer not found: skipped" | tee "$LOG/memcheck-own.txt"
fi

step "5. one training step of the paper net at batch $VBATCH, $SIZE x $SIZE, both paths, strict FP32, against a float64 reference"
V=$LOG/validate
mkdir -p "$V"
vendor timeout "$(cap 60 100)" node "$G/validate_step.mjs" run --backend $BACKEND --batch $VBATCH --size $SIZE --dir "$V" --out after 2>&1 | tee "$LOG/validate-run.txt"
REF_PID=""
if [ -n "$TORCH_PY" ]; then
  ( timeout "$(cap 90 100)" "$TORCH_PY" "$S/torch_validate.py" --dir "$V" --device $TORCH_DEVICE > "$LOG/torch-validate.txt" 2>&1 ) &
  REF_PID=$!
fi
own timeout "$(cap 60 100)" node "$G/validate_step.mjs" run --backend $BACKEND --batch $VBATCH --size $SIZE --dir "$V" --out after-own --save-before 0 2>&1 | tee -a "$LOG/validate-run.txt"
if [ -n "$REF_PID" ]; then
  wait $REF_PID; cat "$LOG/torch-validate.txt"
  for a in after after-own; do
    timeout "$(cap 30 100)" node "$G/validate_step.mjs" compare --dir "$V" --ref torch --after $a --label "$a" 2>&1 | tee -a "$LOG/validate.txt"
  done
fi
if [ -z "$TORCH_PY" ] || [ $MODE = emu ]; then
  # the float64 reference of @alexnet/tensor (slow, so --emulated sizes only): without PyTorch the
  # reference, with it a check of torch_validate.py itself
  timeout "$(cap 60 100)" node "$G/validate_step.mjs" reference --dir "$V" 2>&1 | tee "$LOG/reference-validate.txt"
  for a in after after-own; do
    timeout "$(cap 30 100)" node "$G/validate_step.mjs" compare --dir "$V" --ref reference --after $a --label "$a" 2>&1 | tee -a "$LOG/validate.txt"
  done
fi
rm -f "$V"/*.safetensors   # about 1 GiB at batch 128

step "6. the training step timed at batch $TBATCH, $SIZE x $SIZE: the median of $REPS steps after $WARMUP of warm-up"
TS=(--backend $BACKEND --batch $TBATCH --size $SIZE --warmup $WARMUP --reps $REPS)
vendor timeout "$(cap 45 85)" node "$G/time_step.mjs" "${TS[@]}" --devices 1 --precision default --label "ours, vendor path" 2>&1 | tee "$LOG/time-1.txt" | grep -v "^TIME "
vendor timeout "$(cap 45 70)" node "$G/time_step.mjs" "${TS[@]}" --devices 2 --precision default --label "ours, vendor path, two towers" 2>&1 | tee "$LOG/time-2.txt" | grep -v "^TIME "
own timeout "$(cap 45 55)" node "$G/time_step.mjs" "${TS[@]}" --devices 1 --precision default --label "ours, own kernels" 2>&1 | tee "$LOG/time-3.txt" | grep -v "^TIME "
vendor timeout "$(cap 45 40)" node "$G/time_step.mjs" "${TS[@]}" --devices 1 --precision tf32 --label "ours, vendor path, TF32 everywhere" 2>&1 | tee "$LOG/time-4.txt" | grep -v "^TIME "
if [ -n "$TORCH_PY" ]; then
  timeout "$(cap 90 0)" "$TORCH_PY" "$S/torch_step.py" --device $TORCH_DEVICE --batch $TBATCH --size $SIZE --warmup $WARMUP --reps $([ $MODE = gpu ] && echo $REPS || echo 5) \
    2>&1 | tee "$LOG/torch-time.txt" | grep -v "^TORCH "
fi

step "7. summary ($(elapsed) s in all)"
"$PY" "$S/summary.py" "$LOG"

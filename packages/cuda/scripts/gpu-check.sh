#!/usr/bin/env bash
# The GPU check of @alexnet/cuda, for a machine with an NVIDIA GPU, nvcc and Python with PyTorch, but
# no Node.js and no registry. Prepare .gpu/ first on a machine with Node.js (prepare-gpu-bundle.sh),
# carry it with the working tree, then from the repo root:
#
#   bash packages/cuda/scripts/gpu-check.sh            the whole check (about 3-4 minutes)
#   bash packages/cuda/scripts/gpu-check.sh --smoke    no GPU needed: the bundle on 'cuda-emu', small sizes
#
# Steps: unpack node; build alexnet_cuda.node for sm_90 (ALEXNET_CUDA_ARCHS to change; PyTorch's
# training step is timed meanwhile, while the GPU is otherwise idle); the conformance suite natively on
# 'cuda' against the float64 reference; compute-sanitizer memcheck and racecheck on a quick subset, if
# installed; the paper net's training step at batch 128 on one device and on two logical devices
# (@alexnet/train's benchmark, which times its trainStep: FP32, then with TF32); each kernel of the
# step alone (@alexnet/cuda's benchmark); last, a short table. Every step has a time limit, so the
# whole stays under 5 minutes.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
G=$ROOT/.gpu
PKG=$ROOT/packages/cuda
SMOKE=0
[ "${1:-}" = "--smoke" ] && SMOKE=1
LOG=$(mktemp -d)
T0=$(date +%s)
step() { echo; echo "== $1   [$(( $(date +%s) - T0 )) s]"; }
cd "$ROOT"

[ -d "$G" ] || { echo "no .gpu/ here: run packages/cuda/scripts/prepare-gpu-bundle.sh on a machine with Node.js first"; exit 1; }

step "node"
# unpacked outside .gpu/, so the bundle stays small enough to carry again
NODE_HOME=${TMPDIR:-/tmp}/alexnet-gpu-node
if [ ! -x "$NODE_HOME/bin/node" ]; then
  mkdir -p "$NODE_HOME/bin" && xz -dc "$G/node/bin/node.xz" > "$NODE_HOME/bin/node" && chmod +x "$NODE_HOME/bin/node"
fi
cp -r "$G/node/include" "$NODE_HOME/"   # build.mjs finds node_api.h beside the node binary
export PATH=$NODE_HOME/bin:$PATH
node --version
CUDA_JS=$G/node_modules/@alexnet/cuda/dist/index.js          # --import: registers 'cuda' and 'cuda-emu'
TRAIN_BENCH=$G/node_modules/@alexnet/train/dist/bench/index.js
KERNELS_BENCH=$G/node_modules/@alexnet/cuda/dist/bench/index.js
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader

if [ $SMOKE = 1 ]; then
  BACKEND=cuda-emu
  step "smoke test on cuda-emu (no GPU needed)"
  timeout 240 node "$G/conformance.mjs" --backend cuda-emu --quick 2>&1 | tail -3 | tee "$LOG/conformance.txt"
  timeout 120 node --import "$CUDA_JS" "$TRAIN_BENCH" --backend cuda-emu --batches 1 --reps 1 --modes one --sections train \
    --json "$LOG/train-fp32.json" 2>&1 | tail -4
  timeout 120 node "$KERNELS_BENCH" --backend cuda-emu --batch 2 --size 67 --reps 1 2>&1 | tee "$LOG/kernels.txt" | grep -v "^KERNEL "
else
  BACKEND=cuda
  step "build alexnet_cuda.node for sm_${ALEXNET_CUDA_ARCHS:-90}, and PyTorch's training step meanwhile"
  ( timeout 100 python3 "$PKG/scripts/gpu/torch_step.py" --batch 128 --reps 10 > "$LOG/torch.txt" 2>&1 ) &
  TORCH_PID=$!
  ALEXNET_CUDA_ARCHS=${ALEXNET_CUDA_ARCHS:-90} ALEXNET_NAPI_INCLUDE=$G/node-addon-api ALEXNET_BUILD_JOBS=8 \
    timeout 150 node "$PKG/scripts/build.mjs" --cuda-only
  mkdir -p "$G/node_modules/@alexnet/cuda/build/Release"
  cp "$PKG/build/Release/alexnet_cuda.node" "$PKG/build/Release/build-info.json" "$G/node_modules/@alexnet/cuda/build/Release/" 2>/dev/null \
    || echo "the CUDA addon was not built (see above)"
  wait $TORCH_PID
  cat "$LOG/torch.txt"

  step "conformance suite on cuda (native, against the float64 reference)"
  timeout 100 node "$G/conformance.mjs" --backend cuda --random 4 2>&1 | tee "$LOG/conformance.txt" | grep -v "^  ok"

  SAN=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda/compute-sanitizer/compute-sanitizer 2>/dev/null | head -1)
  if [ -n "$SAN" ]; then
    step "compute-sanitizer memcheck (quick subset)"
    timeout 40 "$SAN" --tool memcheck --error-exitcode 99 node "$G/conformance.mjs" --backend cuda --quick --random 1 > "$LOG/memcheck.txt" 2>&1
    echo "exit $?" >> "$LOG/memcheck.txt"; tail -4 "$LOG/memcheck.txt"
    step "compute-sanitizer racecheck (quick subset: shared-memory hazards around the barriers)"
    timeout 40 "$SAN" --tool racecheck --error-exitcode 99 node "$G/conformance.mjs" --backend cuda --quick --random 1 > "$LOG/racecheck.txt" 2>&1
    echo "exit $?" >> "$LOG/racecheck.txt"; tail -4 "$LOG/racecheck.txt"
  else
    echo "compute-sanitizer not found: skipped" | tee "$LOG/memcheck.txt" "$LOG/racecheck.txt"
  fi

  step "the paper net's training step (@alexnet/train's trainStep), batch 128, one device and two logical devices, FP32 then TF32"
  for P in fp32 tf32; do
    HOOK=$CUDA_JS; [ $P = tf32 ] && HOOK=$G/tf32.mjs
    timeout 90 node --import "$HOOK" "$TRAIN_BENCH" --backend cuda --batches 128 --reps 10 --modes one,two --sections train \
      --json "$LOG/train-$P.json" 2>&1 | grep -E "^  (one|two)"
  done
  step "each kernel of the step alone, batch 128 (FP32)"
  timeout 60 node "$KERNELS_BENCH" --backend cuda --batch 128 --reps 10 2>&1 | tee "$LOG/kernels.txt" | grep -v "^KERNEL "
fi

step "summary"
python3 - "$LOG" "$BACKEND" <<'PY'
import json, re, sys, os
log, backend = sys.argv[1], sys.argv[2]
def lines(name, tag):
    p = os.path.join(log, name)
    if not os.path.exists(p): return []
    out = []
    for l in open(p, errors="replace"):
        if l.startswith(tag + " "):
            try: out.append(json.loads(l[len(tag) + 1:]))
            except ValueError: pass
    return out
def sanitizer(name):
    p = os.path.join(log, name)
    if not os.path.exists(p): return "not run"
    t = open(p, errors="replace").read()
    if "skipped" in t and "exit" not in t: return "compute-sanitizer not found"
    m = re.search(r"ERROR SUMMARY: (\d+) error", t)
    code = re.findall(r"^exit (\d+)", t, re.M)
    code = code[-1] if code else "?"
    if code == "124": return "timed out (no verdict)"
    return (f"{m.group(1)} errors" if m else "no summary") + f" (exit {code})"
def train(precision):
    p = os.path.join(log, f"train-{precision}.json")
    if not os.path.exists(p): return []
    try: rows = json.load(open(p))["rows"]
    except (ValueError, KeyError): return []
    return [{"what": f"{r['mode']} ({precision.upper()})", "devices": r["devices"], "batch": r["batch"], "ms": r["ms"],
             "imgPerSec": r["imgPerSec"]} for r in rows if r.get("section") == "train"]
conf = lines("conformance.txt", "CONFORMANCE")
bench = train("fp32") + train("tf32")
kernels = lines("kernels.txt", "KERNEL")
torch = {r.get("mode"): r for r in lines("torch.txt", "TORCH")}
rows = [("conformance on " + backend, f"{conf[-1]['passed']} passed, {conf[-1]['failed']} failed" if conf else "did not finish")]
if backend == "cuda":
    rows += [("compute-sanitizer memcheck", sanitizer("memcheck.txt")), ("compute-sanitizer racecheck", sanitizer("racecheck.txt"))]
print("| check | result |\n|---|---|")
for k, v in rows: print(f"| {k} | {v} |")
print()
fp32, dflt = torch.get("fp32"), torch.get("default")
print("| training step | devices | batch | ms | img/s | vs PyTorch FP32 | vs PyTorch default (TF32 conv) |")
print("|---|---|---|---|---|---|---|")
for r in bench:
    a = f"{r['imgPerSec'] / fp32['imgPerSec']:.2f}x" if fp32 else "-"
    b = f"{r['imgPerSec'] / dflt['imgPerSec']:.2f}x" if dflt else "-"
    print(f"| {r['what']} | {r['devices']} | {r['batch']} | {r['ms']:.1f} | {r['imgPerSec']:.0f} | {a} | {b} |")
for m, r in (("FP32", fp32), ("default", dflt)):
    if r: print(f"| PyTorch {r.get('torch','')} cuDNN {r.get('cudnn','')} ({m}) | {r.get('gpu','')} | {r['batch']} | {r['ms']:.1f} | {r['imgPerSec']:.0f} | | |")
if not bench: print("| (no figures: see the log above) | | | | | | |")
if kernels: print(f"\neach kernel alone (batch {kernels[0]['batch']}): {sum(k['ms'] for k in kernels):.1f} ms in all; the slowest: " +
                  ", ".join(f"{k['name']} {k['ms']:.2f} ms" for k in sorted(kernels, key=lambda k: -k['ms'])[:3]))
PY
echo "(total $(( $(date +%s) - T0 )) s)"

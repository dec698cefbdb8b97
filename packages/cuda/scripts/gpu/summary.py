#!/usr/bin/env python3
"""The tables of scripts/gpu-check.sh, printed last, from the logs of its steps:

  python3 summary.py LOGDIR

First a verdict line, then the checks (build, conformance on both paths, memcheck, the validated
step) and last the timings of the training step (ours, PyTorch) with the ratios the goal is stated in:
ours against PyTorch with its defaults, at the same precision, and the two towers against one
device. Exits 1 when a check failed or a timing is missing. Python's standard library only.
"""
import json
import os
import re
import sys

log = sys.argv[1]
settings = json.load(open(os.path.join(log, "settings.json")))
emu = settings["mode"] == "emu"
problems = []


def text(name):
    p = os.path.join(log, name)
    return open(p, errors="replace").read() if os.path.exists(p) else None


def tagged(name, tag):
    t = text(name) or ""
    out = []
    for line in t.splitlines():
        if line.startswith(tag + " "):
            try:
                out.append(json.loads(line[len(tag) + 1:]))
            except ValueError:
                pass
    return out


def exit_code(t):
    codes = re.findall(r"^exit (\d+)$", t or "", re.M)
    return int(codes[-1]) if codes else None


def e(x):
    return f"{x:.1e}" if isinstance(x, (int, float)) else "-"


def kernels_of(k):
    if not k:
        return "?"
    conv = {k.get("conv2dForward", "?"), k.get("conv2dBackwardData", "?"), k.get("conv2dBackwardFilter", "?")}
    conv = conv.pop() if len(conv) == 1 else "/".join(sorted(conv))
    return f"conv {conv}, gemm {k.get('gemm', '?')}"


checks = []  # (check, ok | None for not run, result)

node = (text("node.txt") or "").strip()
checks.append(("node from the bundle", bool(node), node or "did not run"))

b = (tagged("build.txt", "BUILD") or [{}])[-1]
archs = ",".join(b.get("archs") or []) or os.environ.get("ALEXNET_CUDA_ARCHS", "90")
if b.get("rc") == 0 and b.get("built"):
    vh = b.get("vendorHeaders") or {}
    vh = ("vendor/api.h matches NVIDIA's headers" if vh.get("ok") else "vendor/api.h does NOT match NVIDIA's headers") if vh.get("checked") \
        else f"vendor headers not checked ({vh.get('reason', 'not found')})"
    took = "up to date" if b.get("upToDate") else f"{b.get('seconds', 0):.0f} s"
    checks.append((f"build sm_{archs} ({b.get('nvcc', 'nvcc')})", True, f"built ({took}); {vh}" + ("; not used: no GPU" if emu else "")))
elif b.get("reason") == "nvcc not found" and emu:
    checks.append(("build sm_90", None, "skipped: nvcc not found (the emulated check does not need it)"))
else:
    checks.append((f"build sm_{archs}", False, f"failed (exit {b.get('rc')}): {b.get('reason', 'see build.log')}"))

for path in ("vendor", "own"):
    t = text(f"conformance-{path}.txt")
    c = (tagged(f"conformance-{path}.txt", "CONFORMANCE") or [None])[-1]
    code = exit_code(t)
    name = f"conformance on {settings['backend']}, {'vendor path' if path == 'vendor' else 'own kernels'}" + (" (quick)" if c and c.get("quick") else "")
    if not c or "passed" not in c:
        checks.append((name, False, "timed out" if code == 124 else f"did not finish (exit {code}): {c.get('error') if c else 'see the log'}"))
        continue
    ran = kernels_of({f: v.split(" (")[0] for f, v in c.get("kernels", {}).items()})
    vendor_calls = sum(v for k, v in (c.get("counters") or {}).items() if re.search(r"cudnn|cublas|vendor", k, re.I))
    extra = f"; vendor calls {vendor_calls}" if path == "vendor" else ""
    checks.append((name, c["failed"] == 0 and code == 0, f"{c['passed']} passed, {c['failed']} failed in {c.get('seconds', 0):.0f} s; {ran}{extra}"))

for tool, path in (("memcheck", "own"), ("memcheck", "vendor"), ("racecheck", "own")):
    t = text(f"{tool}-{path}.txt")
    if t is None:
        continue
    name = f"compute-sanitizer {tool}, {'own kernels' if path == 'own' else 'vendor path'}"
    code = exit_code(t)
    if "not found: skipped" in t:
        checks.append((name, None, "compute-sanitizer not found"))
    elif "skipped, too little time" in t:
        checks.append((name, None, "skipped: too little time left"))
    elif "no sanitizer: emulated" in t:
        c = (tagged(f"{tool}-{path}.txt", "CONFORMANCE") or [{}])[-1]
        checks.append((name, code == 0, f"needs a GPU; the short case on {settings['backend']}: {c.get('passed', '?')} passed, {c.get('failed', '?')} failed"))
    else:
        # memcheck: "ERROR SUMMARY: 0 errors"; racecheck: "RACECHECK SUMMARY: 0 hazards displayed (0 errors, 0 warnings)"
        m = re.search(r"ERROR SUMMARY: (\d+) error", t) or re.search(r"RACECHECK SUMMARY: \d+ hazards? displayed \((\d+) error", t)
        if code == 124:
            checks.append((name, None, "timed out (no verdict)"))
        else:
            checks.append((name, bool(m) and m.group(1) == "0" and code == 0, (f"{m.group(1)} errors" if m else "no summary") + f" (exit {code})"))

vals = tagged("validate.txt", "VALIDATE")
ref = (tagged("torch-validate.txt", "TORCHREF") or [{}])[-1]
# the references the check ran: PyTorch's where it has PyTorch, @alexnet/tensor's emulated or without it
refs = (["torch"] if text("torch-validate.txt") is not None else []) + (["reference"] if text("reference-validate.txt") is not None else [])
if not refs:
    checks.append(("one training step against a float64 reference", False, "no reference ran (see the log)"))
want = [(a, r) for a in ("after", "after-own") for r in refs]
for a, r in want:
    v = next((x for x in vals if x.get("label") == a and x.get("ref") == r), None)
    who = "vendor path" if a == "after" else "own kernels"
    against = (f"PyTorch {ref['torch']} float64 on {ref.get('device', '?')}" if ref else "PyTorch's float64 step") if r == "torch" \
        else "@alexnet/tensor's float64 reference"
    name = f"one step at batch {settings['validateBatch']}, {who}, vs {against}"
    if not v:
        checks.append((name, False, "did not finish (see the log)"))
        continue
    lim = v.get("limits", {})
    w = v.get("worstUpdate", {})
    checks.append((name, v["failed"] == 0, f"{v['passed']} within the limits, {v['failed']} over: loss {e(v['loss'])}, logits {e(v['logits'])}, "
                   f"worst update {w.get('what', '?')} {e(w.get('error'))} (limits {lim.get('loss')}, {lim.get('logits')}, {lim.get('update')})"))

# ---- timings ----
ours = []
for i in range(1, 5):
    r = (tagged(f"time-{i}.txt", "TIME") or [None])[-1]
    ours.append(r)
torch_rows = {r.get("mode"): r for r in tagged("torch-time.txt", "TORCH")}
if None in torch_rows:  # an error before any setting ran (no GPU for PyTorch): it is every row's
    torch_rows = {m: torch_rows[None] for m in ("default", "tf32", "bf16")}
torch_installed = os.path.exists(os.path.join(log, "torch-time.txt"))
labels_ours = ["ours, vendor path", "ours, vendor path, two towers", "ours, own kernels", "ours, vendor path, TF32 everywhere"]
for label, r in zip(labels_ours, ours):
    if not r or "ms" not in r:
        problems.append(f"the timing '{label}' did not finish" + (f": {r['error']}" if r and r.get("error") else ""))
    elif not r.get("finite"):
        problems.append(f"the timing '{label}' ended with a loss of {r.get('loss')}")
if torch_installed:
    for m in ("default", "tf32", "bf16"):
        if "ms" not in torch_rows.get(m, {}):
            problems.append(f"PyTorch's timing '{m}' did not finish" + (f": {torch_rows[m]['error']}" if m in torch_rows and "error" in torch_rows[m] else ""))

failed = [c for c in checks if c[1] is False]
problems = [f"{c[0]}: {c[2]}" for c in failed] + problems

print("gpu-check: " + ("every check passed" if not problems else f"{len(problems)} problem(s):"))
for p in problems:
    print(f"  - {p}")
print()
print(f"| check ({'emulated: ' + settings['backend'] if emu else settings['backend']}) | | result |")
print("|---|---|---|")
for name, ok, result in checks:
    print(f"| {name} | {'ok' if ok else ('FAIL' if ok is False else '-')} | {result} |")
print()

base = torch_rows.get("default", {}).get("imgPerSec")
same = {"default": base, "tf32": torch_rows.get("tf32", {}).get("imgPerSec")}
one_device = ours[0]["imgPerSec"] if ours[0] and "imgPerSec" in ours[0] else None
where = next((r.get("gpu") for r in ours if r and r.get("gpu")), settings["backend"])
print(f"training step of the paper net (§5) on {where}, batch {settings['timeBatch']}, {settings['size']} x {settings['size']}: "
      f"median of {settings['reps']} steps after {settings['warmup']} warm-up" + (" (PyTorch: 5)" if emu else "") +
      ("; emulated: the figures test the script, not the speed" if emu else ""))
print()
print("| training step | devices | kernels | precision (conv / matmul) | ms | img/s | vs PyTorch default | vs PyTorch, same precision | note |")
print("|---|---|---|---|---|---|---|---|---|")
ratio = lambda a, b: f"{a / b:.2f}x" if a and b else "-"
for label, r in zip(labels_ours, ours):
    if not r or "ms" not in r:
        print(f"| {label} | | | | did not finish | | | | {r.get('error', '') if r else ''} |")
        continue
    prec = r.get("inForce") or {}
    p = f"{prec.get('conv', '?')} / {prec.get('matmul', '?')}"
    note = f"{ratio(r['imgPerSec'], one_device)} of one device (goal: within 10 %)" if r["devices"] == 2 else ""
    if not r.get("finite"):
        note = f"loss {r.get('loss')}! " + note
    print(f"| {label} | {r['devices']} | {kernels_of(r.get('kernels'))} | {p} | {r['ms']:.1f} | {r['imgPerSec']:.1f} | {ratio(r['imgPerSec'], base)} | "
          f"{ratio(r['imgPerSec'], same.get(r.get('precision')))} | {note} |")
names = {"default": "PyTorch, defaults", "tf32": "PyTorch, TF32 everywhere", "bf16": "PyTorch, channels_last + bf16 autocast"}
for m in ("default", "tf32", "bf16"):
    r = torch_rows.get(m)
    if not torch_installed:
        print(f"| {names[m]} | | | | PyTorch not installed | | | | |")
    elif not r or "ms" not in r:
        print(f"| {names[m]} | | | | did not finish | | | | {(r or {}).get('error', '')} |")
    else:
        f = r.get("flags", {})
        p = "bf16 autocast" if m == "bf16" else f"{f.get('conv', '?')} / {f.get('matmul', '?')}"
        what = f"PyTorch {r.get('torch', '')}" + (f", cuDNN {r['cudnn']}" if r.get("cudnn") else "")
        print(f"| {names[m]} | 1 | {what} | {p}{', cudnn.benchmark' if f.get('benchmark') else ''} | {r['ms']:.1f} | {r['imgPerSec']:.1f} | "
              f"{ratio(r['imgPerSec'], base)} | | |")
sys.exit(1 if problems else 0)

#!/usr/bin/env python3
"""The PyTorch peer of the GPU check: the paper's AlexNet training step (§5) on CUDA (cuDNN, cuBLAS),
timed in the same run as ours (scripts/gpu-check.sh). The model is the paper's AlexNet as written in
PyTorch for the CPU comparisons (alexnet(), paper_lrn(), make_optimizer(): conv1 padding 2 at 224 and
0 at 227 as ours, groups=2 on conv2/4/5 (§3.2), LRN with the paper's alpha (§3.3), paper init, SGD lr
0.01 momentum 0.9 weight decay 5e-4, dropout 0.5), kept here in full so that the GPU machine needs
nothing but this file and PyTorch.

  python3 torch_step.py [--batch 128] [--size 227] [--warmup 5] [--reps 20] [--device cuda|cpu]
                        [--modes default,tf32,bf16] [--lr 1e-6]

One `TORCH {json}` line per setting, each the median of --reps steps after --warmup, in this order:
  default  PyTorch as installed, nothing set (its defaults: cuDNN may use TF32 for convolutions,
           matmuls strict FP32, cudnn.benchmark off)
  tf32     TF32 everywhere (convolutions and matmuls; the 2.9+ flags
           torch.backends.cuda.matmul.fp32_precision / torch.backends.cudnn.conv.fp32_precision = 'tf32',
           or allow_tf32 on older versions), cudnn.benchmark on
  bf16     channels_last memory format and bf16 autocast (float32 weights), cudnn.benchmark on
--device cpu (gpu-check.sh --emulated) runs the same settings on the CPU, where TF32 means nothing.
"""
import argparse
import json
import statistics
import time
from collections import OrderedDict

import torch
import torch.nn as nn

LRN_N, LRN_K, LRN_ALPHA_PAPER, LRN_BETA = 5, 2.0, 1e-4, 0.75
BIAS_ONE = {"conv2", "conv4", "conv5", "fc6", "fc7"}


def paper_lrn():
    # torch divides alpha by n; the paper does not (§3.3)
    return nn.LocalResponseNorm(size=LRN_N, alpha=LRN_ALPHA_PAPER * LRN_N, beta=LRN_BETA, k=LRN_K)


def pool5_side(size):
    side = lambda n, k, s, p=0: (n + 2 * p - k) // s + 1
    n = side(size, 11, 4, 2 if size == 224 else 0)  # conv1
    n = side(n, 3, 2)  # pool1 (conv2 keeps the side)
    n = side(n, 3, 2)  # pool2 (conv3-5 keep it)
    return side(n, 3, 2)  # pool5: 6 at 224 and 227, 1 at 67


def alexnet(inplace=True, size=224):
    L = OrderedDict()
    L["conv1"] = nn.Conv2d(3, 96, 11, stride=4, padding=2 if size == 224 else 0)
    L["relu1"] = nn.ReLU(inplace)
    L["lrn1"] = paper_lrn()
    L["pool1"] = nn.MaxPool2d(3, 2)
    L["conv2"] = nn.Conv2d(96, 256, 5, padding=2, groups=2)
    L["relu2"] = nn.ReLU(inplace)
    L["lrn2"] = paper_lrn()
    L["pool2"] = nn.MaxPool2d(3, 2)
    L["conv3"] = nn.Conv2d(256, 384, 3, padding=1)
    L["relu3"] = nn.ReLU(inplace)
    L["conv4"] = nn.Conv2d(384, 384, 3, padding=1, groups=2)
    L["relu4"] = nn.ReLU(inplace)
    L["conv5"] = nn.Conv2d(384, 256, 3, padding=1, groups=2)
    L["relu5"] = nn.ReLU(inplace)
    L["pool5"] = nn.MaxPool2d(3, 2)
    L["flatten"] = nn.Flatten()
    L["fc6"] = nn.Linear(256 * pool5_side(size) ** 2, 4096)
    L["relu6"] = nn.ReLU(inplace)
    L["drop6"] = nn.Dropout(0.5)
    L["fc7"] = nn.Linear(4096, 4096)
    L["relu7"] = nn.ReLU(inplace)
    L["drop7"] = nn.Dropout(0.5)
    L["fc8"] = nn.Linear(4096, 1000)
    m = nn.Sequential(L)
    with torch.no_grad():
        for name, mod in m.named_children():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.normal_(0.0, 0.01)
                mod.bias.fill_(1.0 if name in BIAS_ONE else 0.0)
    return m


def make_optimizer(model, lr=0.01):
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)


def new_precision_api():
    """PyTorch 2.9+ sets TF32 by fp32_precision; mixing it with allow_tf32 is refused there."""
    try:  # older versions answer an unknown attribute of torch.backends.cuda.matmul with AssertionError
        torch.backends.cuda.matmul.fp32_precision
        torch.backends.cudnn.conv.fp32_precision
        return True
    except (AttributeError, AssertionError):
        return False


def flags():
    if new_precision_api():
        return {"matmul": torch.backends.cuda.matmul.fp32_precision, "conv": torch.backends.cudnn.conv.fp32_precision,
                "benchmark": torch.backends.cudnn.benchmark}
    return {"matmul": "tf32" if torch.backends.cuda.matmul.allow_tf32 else "ieee", "conv": "tf32" if torch.backends.cudnn.allow_tf32 else "ieee",
            "benchmark": torch.backends.cudnn.benchmark}


def tf32_everywhere():
    if new_precision_api():
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def bench(mode, batch, size, warmup, reps, dev, lr):
    if mode in ("tf32", "bf16"):
        tf32_everywhere()
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    model = alexnet(size=size).to(dev).train()
    x = torch.randn(batch, 3, size, size, device=dev)
    if mode == "bf16":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = make_optimizer(model, lr)
    crit = nn.CrossEntropyLoss()
    y = torch.randint(0, 1000, (batch,), device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def step():
        opt.zero_grad(set_to_none=True)
        if mode == "bf16":
            with torch.autocast(device_type=dev.type, dtype=torch.bfloat16):
                loss = crit(model(x), y)
        else:
            loss = crit(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(warmup):
        step()
    sync()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        loss = step()
        sync()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    return {"mode": mode, "batch": batch, "size": size, "warmup": warmup, "reps": reps, "ms": med * 1e3, "bestMs": min(ts) * 1e3,
            "imgPerSec": batch / med, "loss": float(loss), "flags": flags(), "torch": torch.__version__,
            "cudnn": torch.backends.cudnn.version() if dev.type == "cuda" else None, "gpu": where}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--size", type=int, default=227)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--modes", default="default,tf32,bf16")
    # the same batch every step: at the paper's lr 0.01 the loss diverges within 20 steps; a tiny lr
    # keeps the weights (and the loss) where they start, and the work is the same (as time_step.mjs)
    ap.add_argument("--lr", type=float, default=1e-6)
    args = ap.parse_args()
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("TORCH " + json.dumps({"error": "torch.cuda.is_available() is False", "torch": torch.__version__}), flush=True)
        return
    for mode in args.modes.split(","):  # default first: nothing set yet
        try:
            r = bench(mode, args.batch, args.size, args.warmup, args.reps, dev, args.lr)
        except Exception as e:  # one setting failing (bf16 on an old CPU build) leaves the others
            print("TORCH " + json.dumps({"mode": mode, "error": f"{type(e).__name__}: {e}", "torch": torch.__version__}), flush=True)
            continue
        print(f"  PyTorch {torch.__version__} {r['mode']:7s} batch {r['batch']}: {r['ms']:.1f} ms median of {r['reps']} "
              f"({r['imgPerSec']:.0f} img/s), flags {r['flags']}", flush=True)
        print("TORCH " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()

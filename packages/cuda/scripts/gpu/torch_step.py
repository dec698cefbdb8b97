#!/usr/bin/env python3
"""The PyTorch peer of the GPU check: the paper's AlexNet training step on CUDA (cuDNN), timed in the
same run as ours. The model is the paper's AlexNet as written in PyTorch for the CPU comparisons
(alexnet(), paper_lrn(), make_optimizer(): 224 input with conv1 padding 2, groups=2 on conv2/4/5, LRN
with the paper's alpha, paper init, SGD lr 0.01 momentum 0.9 weight decay 5e-4), kept here in full so
that the GPU machine needs nothing but this file and PyTorch.

  python3 torch_step.py [--batch 128] [--reps 10]

Prints one `TORCH {json}` line per setting: 'fp32' (TF32 off for convolutions and matmuls: the same
arithmetic as our kernels) and 'default' (PyTorch's defaults: cuDNN may use TF32 for convolutions).
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


def alexnet(inplace=True):
    L = OrderedDict()
    L["conv1"] = nn.Conv2d(3, 96, 11, stride=4, padding=2)
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
    L["fc6"] = nn.Linear(9216, 4096)
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


def make_optimizer(model):
    return torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)


def bench(batch, reps, tf32):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    torch.manual_seed(0)
    dev = torch.device("cuda")
    model = alexnet().to(dev).train()
    opt = make_optimizer(model)
    crit = nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, 224, 224, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)

    def step():
        opt.zero_grad(set_to_none=True)
        crit(model(x), y).backward()
        opt.step()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        step()
        torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    med = statistics.median(ts)
    return {"mode": "default" if tf32 else "fp32", "batch": batch, "ms": med * 1e3, "imgPerSec": batch / med,
            "torch": torch.__version__, "cudnn": torch.backends.cudnn.version(), "gpu": torch.cuda.get_device_name(0)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--reps", type=int, default=10)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("TORCH " + json.dumps({"error": "torch.cuda.is_available() is False"}), flush=True)
        return
    for tf32 in (False, True):
        r = bench(args.batch, args.reps, tf32)
        print(f"  PyTorch {torch.__version__} {r['mode']:7s} batch {r['batch']}: {r['ms']:.1f} ms, {r['imgPerSec']:.0f} img/s", flush=True)
        print("TORCH " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()

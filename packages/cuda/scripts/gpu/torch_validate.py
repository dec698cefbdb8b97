#!/usr/bin/env python3
"""PyTorch's side of the GPU check's validation: one training step of the paper net (dropout off) in
float64, from the weights and batch that validate_step.mjs wrote, so that our step (float32, on the
GPU) is held to an independent reference.

  python3 torch_validate.py --dir D [--device cuda|cpu]

Reads D/before.safetensors (the weights, x, labels, and in its metadata the net's layer list as our
side built it), runs forward (§3: conv, ReLU, LRN within each tower (§3.3), overlapping max-pool (§3.4),
the towers' grouped convolutions (§3.2)), the mean softmax cross-entropy, backward (autograd), and
the update of one SGD step from zero velocity in the paper's form (§5: v = -lr (g + decay w)), and
writes D/torch.safetensors: logits, loss and update.<name> in float64. The safetensors files are
read and written here directly (an 8-byte header length, a JSON header, the raw data), so the
`safetensors` package is not needed. Prints one `TORCHREF {json}` line.
"""
import argparse
import ctypes
import json
import os
import struct
import sys
import time

import torch
import torch.nn.functional as F

DTYPES = {"F64": torch.float64, "F32": torch.float32, "I32": torch.int32, "I64": torch.int64, "U8": torch.uint8}
NAMES = {v: k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = bytearray(f.read())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, h in header.items():
        dt = DTYPES.get(h["dtype"])
        if dt is None:
            raise ValueError(f"{path}: tensor {name} has dtype {h['dtype']}, which this reader does not know")
        start, end = h["data_offsets"]
        count = (end - start) // torch.empty((), dtype=dt).element_size()
        t = torch.frombuffer(data, dtype=dt, count=count, offset=base + start) if count else torch.empty(0, dtype=dt)
        out[name] = t.reshape(h["shape"]).clone()
    return out, meta


def write_safetensors(path, tensors, meta=None):
    header, blobs, offset = {}, [], 0
    for name, t in tensors.items():
        t = t.detach().to("cpu").contiguous()
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": NAMES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        blobs.append(ctypes.string_at(t.data_ptr(), nbytes) if nbytes else b"")
        offset += nbytes
    if meta:
        header["__metadata__"] = {k: str(v) for k, v in meta.items()}
    h = json.dumps(header, separators=(",", ":")).encode("utf-8")
    h += b" " * ((8 - len(h) % 8) % 8)  # the data starts 8-byte aligned, as the format asks
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def lrn(x, spec, towers):
    # the paper's b = a / (k + alpha sum a^2)^beta over n neighbouring channels (§3.3); torch divides
    # alpha by n, so it is given alpha n for the paper's convention. Within each tower unless 'all'.
    alpha = spec["alpha"] * spec["size"] if spec.get("convention", "paper") == "paper" else spec["alpha"]
    f = lambda t: F.local_response_norm(t, spec["size"], alpha=alpha, beta=spec["beta"], k=spec["k"])
    if towers == 2 and spec.get("inputs", "own") == "own":
        return torch.cat([f(t) for t in x.chunk(2, dim=1)], dim=1)
    return f(x)


def forward(layers, towers, w, x):
    for spec in layers:
        kind, name = spec["kind"], spec["name"]
        if kind == "conv":
            groups = 2 if towers == 2 and spec.get("inputs") == "own" else 1
            x = F.conv2d(x, w[f"{name}.weight"], w[f"{name}.bias"], stride=spec["stride"], padding=spec["padding"], groups=groups)
        elif kind == "linear":
            x = F.linear(x, w[f"{name}.weight"], w[f"{name}.bias"])
        elif kind == "relu":
            x = F.relu(x)
        elif kind == "tanh":
            x = torch.tanh(x)
        elif kind == "lrn":
            x = lrn(x, spec, towers)
        elif kind == "maxpool":
            x = F.max_pool2d(x, spec["size"], spec["stride"], padding=spec.get("padding", 0))
        elif kind == "flatten":
            x = torch.flatten(x, 1)
        elif kind == "dropout":
            raise ValueError("the validation step runs with dropout off; the net given has a dropout layer")
        else:
            raise ValueError(f"layer {name}: kind {kind} is not known to torch_validate.py")
    return x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=".")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    t0 = time.perf_counter()
    tensors, meta = read_safetensors(os.path.join(args.dir, "before.safetensors"))
    model = json.loads(meta["model"])
    sgd = json.loads(meta["sgd"])
    dev = torch.device(args.device)
    x = tensors.pop("x").to(dev, torch.float64)
    labels = tensors.pop("labels").to(dev, torch.int64)
    w = {k: v.to(dev, torch.float64).requires_grad_(True) for k, v in tensors.items()}
    # float64 throughout: TF32 and reduced-precision reductions do not apply to it, but say so anyway
    torch.backends.cudnn.deterministic = True
    logits = forward(model["layers"], model.get("towers", 1), w, x)
    loss = F.cross_entropy(logits, labels)
    loss.backward()
    lr, decay = sgd["lr"], sgd["weightDecay"]
    out = {"logits": logits.detach(), "loss": loss.detach().reshape(1)}
    with torch.no_grad():
        for k, p in w.items():
            out[f"update.{k}"] = -lr * (p.grad + decay * p)
    write_safetensors(os.path.join(args.dir, "torch.safetensors"), out, {"torch": torch.__version__, "device": str(dev)})
    s = time.perf_counter() - t0
    where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    print(f"torch_validate: PyTorch {torch.__version__} float64 on {where}: loss {loss.item():.6f} ({s:.1f} s)", flush=True)
    print("TORCHREF " + json.dumps({"torch": torch.__version__, "device": where, "loss": loss.item(), "seconds": s}), flush=True)


if __name__ == "__main__":
    sys.exit(main())

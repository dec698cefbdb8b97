#!/usr/bin/python3
"""PyTorch side of src/torch.test.ts: the same nets in PyTorch, exchanging weights with @alexnet/layers
through safetensors (written and read here without the safetensors package).

  torch_crosscheck.py export DIR       writes DIR/{torchvision,paper}.safetensors (PyTorch's random
                                       weights) and DIR/{torchvision,paper}_io.safetensors (input x,
                                       labels, logits in eval mode, mean cross-entropy loss, and the
                                       gradient of every parameter as grad.<name>, dropout off)
  torch_crosscheck.py logits MODEL WEIGHTS INPUT OUT
                                       loads @alexnet's weights (strict) into MODEL (torchvision|paper),
                                       runs INPUT's x in eval mode, writes OUT (logits)

Nets: torchvision.models.alexnet(num_classes=10); the paper's net written in PyTorch
(names conv1 ... fc8, groups=2 on conv2/4/5, LRN over all channels with
torch's alpha = 1e-4 * 5), with 10 classes and conv1 padding 0 (the 227 convention). Input 67x67.
"""
import json
import struct
import sys
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision

CLASSES, SIZE, BATCH = 10, 67, 2
DT = {torch.float32: 'F32', torch.int64: 'I64', torch.int32: 'I32'}
FROM = {'F32': torch.float32, 'I64': torch.int64, 'I32': torch.int32, 'F64': torch.float64}


def save(path, tensors):
    header, blobs, off = {}, [], 0
    for k in sorted(tensors):
        t = tensors[k].detach().contiguous()
        b = t.numpy().tobytes()
        header[k] = {'dtype': DT[t.dtype], 'shape': list(t.shape), 'data_offsets': [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def load(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8:8 + n])
    out = {}
    for k, v in header.items():
        if k == '__metadata__':
            continue
        a, b = v['data_offsets']
        t = torch.frombuffer(bytearray(data[8 + n + a:8 + n + b]), dtype=FROM[v['dtype']])
        out[k] = t.reshape(v['shape']).clone()
    return out


class TowerLRN(nn.Module):
    """LRN within each tower's half of the maps (§3.3 on each of the paper's two GPUs); no parameters."""

    def __init__(self, towers, size=5, alpha=1e-4, beta=0.75, k=2.0):
        super().__init__()
        self.towers = towers
        # torch's LocalResponseNorm divides alpha by size; the paper's k + alpha * sum does not.
        self.lrn = nn.LocalResponseNorm(size, alpha=alpha * size, beta=beta, k=k)

    def forward(self, x):
        return torch.cat([self.lrn(t) for t in x.chunk(self.towers, 1)], 1)


def paper_net(cfg):
    """The paper's net (or the one-tower 'paper-half'), with @alexnet's names: exportSafetensors' layout."""
    half = cfg['name'] == 'paper-half'
    k1, k2, k3, k4, k5 = (48, 128, 192, 192, 256) if half else (96, 256, 384, 384, 256)
    groups = 1 if half else 2
    lrn_towers = 1 if half or cfg.get('lrnAcrossTowers') else 2
    size, classes = cfg['inputSize'], cfg['classes']
    pad1 = 2 if size == 224 else 0
    s = (size + 2 * pad1 - 11) // 4 + 1
    for _ in range(3):
        s = (s - 3) // 2 + 1
    L = OrderedDict()
    L['conv1'] = nn.Conv2d(3, k1, 11, stride=4, padding=pad1)
    L['relu1'] = nn.ReLU()
    L['norm1'] = TowerLRN(lrn_towers)
    L['pool1'] = nn.MaxPool2d(3, 2)
    L['conv2'] = nn.Conv2d(k1, k2, 5, padding=2, groups=groups)
    L['relu2'] = nn.ReLU()
    L['norm2'] = TowerLRN(lrn_towers)
    L['pool2'] = nn.MaxPool2d(3, 2)
    L['conv3'] = nn.Conv2d(k2, k3, 3, padding=1)
    L['relu3'] = nn.ReLU()
    L['conv4'] = nn.Conv2d(k3, k4, 3, padding=1, groups=groups)
    L['relu4'] = nn.ReLU()
    L['conv5'] = nn.Conv2d(k4, k5, 3, padding=1, groups=groups)
    L['relu5'] = nn.ReLU()
    L['pool5'] = nn.MaxPool2d(3, 2)
    L['flatten'] = nn.Flatten()
    L['fc6'] = nn.Linear(k5 * s * s, 4096)
    L['relu6'] = nn.ReLU()
    L['drop6'] = nn.Dropout(0.5)
    L['fc7'] = nn.Linear(4096, 4096)
    L['relu7'] = nn.ReLU()
    L['drop7'] = nn.Dropout(0.5)
    L['fc8'] = nn.Linear(4096, classes)
    return nn.Sequential(L)


def crosscheck_net():
    """The paper's net as torch_crosscheck compares it: one device, LRN over all maps, 10 classes, 67x67."""
    m = paper_net({'name': 'paper', 'classes': CLASSES, 'inputSize': SIZE, 'lrnAcrossTowers': True})
    with torch.no_grad():  # larger than the paper's 0.01 so that the logits are far from zero
        for name, mod in m.named_children():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                mod.weight.normal_(0.0, 0.05)
                mod.bias.uniform_(-0.5, 1.0)
    return m


def make(model):
    torch.manual_seed(0)
    return torchvision.models.alexnet(num_classes=CLASSES) if model == 'torchvision' else crosscheck_net()


def export(out_dir):
    for model in ('torchvision', 'paper'):
        m = make(model).eval()  # eval: dropout off, so the gradients are deterministic
        x = torch.randn(BATCH, 3, SIZE, SIZE)
        labels = torch.tensor([3, 7], dtype=torch.int32)
        logits = m(x)
        loss = F.cross_entropy(logits, labels.long())
        loss.backward()
        save(f'{out_dir}/{model}.safetensors', m.state_dict())
        io = {'x': x, 'labels': labels, 'logits': logits, 'loss': loss.reshape(1)}
        for k, p in m.named_parameters():
            io[f'grad.{k}'] = p.grad
        save(f'{out_dir}/{model}_io.safetensors', io)


def logits(model, weights, inp, out):
    m = make(model).eval()
    m.load_state_dict(load(weights), strict=True)
    with torch.no_grad():
        y = m(load(inp)['x'])
    save(out, {'logits': y})


if __name__ == '__main__':
    torch.set_num_threads(1)
    if sys.argv[1] == 'export':
        export(sys.argv[2])
    else:
        logits(*sys.argv[2:6])

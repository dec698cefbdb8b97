#!/usr/bin/python3
"""PyTorch's side of src/*.test.ts (Debian's python3-torch 1.13 and python3-torchvision 0.14). Tensors
go back and forth as safetensors files: read with `safetensors.torch.load_file` where the safetensors
package is installed, else with the small reader of packages/layers/scripts/torch_crosscheck.py
(Debian 12 does not package safetensors).

  torch_side.py save-torchvision DIR     torch.manual_seed(0); torchvision.models.alexnet(); writes
                                         DIR/tv.pth (zip) and DIR/tv-legacy.pth (legacy format) with
                                         torch.save(model.state_dict(), f)
  torch_side.py torchvision-logits PTH X OUT
                                         torch.load(PTH) into torchvision's AlexNet (strict), runs X's
                                         "x" in eval mode, writes OUT's "logits"
  torch_side.py logits CONFIG ST X OUT   the PyTorch module matching CONFIG (JSON: name, classes,
                                         inputSize, lrnAcrossTowers), load_state_dict(ST, strict=True),
                                         runs X's "x", writes OUT's "logits"
  torch_side.py preprocess OUT IMAGE...  torchvision's ImageNet transform on each image (PIL): OUT's "x"
"""
import json
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn

# The safetensors writer and reader of @alexnet/layers' PyTorch cross-check (no safetensors package needed).
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'layers', 'scripts'))
from torch_crosscheck import load as load_plain, save  # noqa: E402


def load(path):
    try:
        from safetensors.torch import load_file  # the reference reader, where it is installed
    except ImportError:
        return load_plain(path)
    return load_file(path)


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


def module_for(cfg):
    import torchvision
    if cfg['name'] == 'torchvision':
        return torchvision.models.alexnet(num_classes=cfg['classes'])
    return paper_net(cfg)


def run(m, x_path, out):
    m.eval()
    with torch.no_grad():
        y = m(load(x_path)['x'])
    save(out, {'logits': y})


if __name__ == '__main__':
    torch.set_num_threads(2)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == 'save-torchvision':
        import torchvision
        torch.manual_seed(0)
        m = torchvision.models.alexnet()
        torch.save(m.state_dict(), f'{args[0]}/tv.pth')
        torch.save(m.state_dict(), f'{args[0]}/tv-legacy.pth', _use_new_zipfile_serialization=False)
    elif cmd == 'torchvision-logits':
        import torchvision
        m = torchvision.models.alexnet()
        m.load_state_dict(torch.load(args[0]), strict=True)
        run(m, args[1], args[2])
    elif cmd == 'logits':
        cfg = json.loads(args[0])
        m = module_for(cfg)
        m.load_state_dict(load(args[1]), strict=True)  # raises on any missing, unexpected or mis-shaped tensor
        run(m, args[2], args[3])
    elif cmd == 'preprocess':
        from PIL import Image
        from torchvision import transforms
        t = transforms.Compose([transforms.Resize(256), transforms.CenterCrop(224), transforms.ToTensor(),
                                transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225])])
        xs = [t(Image.open(p).convert('RGB')) for p in args[1:]]
        save(args[0], {'x': torch.stack(xs)})
    else:
        sys.exit(f'unknown command {cmd}')

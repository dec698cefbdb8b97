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

# The safetensors writer and reader (no safetensors package needed) and the paper's net in PyTorch,
# from @alexnet/layers' PyTorch cross-check.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'layers', 'scripts'))
from torch_crosscheck import load as load_plain, paper_net, save  # noqa: E402


def load(path):
    try:
        from safetensors.torch import load_file  # the reference reader, where it is installed
    except ImportError:
        return load_plain(path)
    return load_file(path)


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

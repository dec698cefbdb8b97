#!/usr/bin/python3
"""Writes the small torch.save files that src/torch-file.test.ts reads when PyTorch is absent.
Run once with Debian's python3-torch (1.13) and commit the output:

    /usr/bin/python3 scripts/make-fixtures.py test/fixtures

  small.pt          zip format (the default): one tensor of each element type, a transposed and two
                    sliced views sharing storages, a Parameter, and the state dict's _metadata
  small-legacy.pt   the same object with _use_new_zipfile_serialization=False
  not-alexnet.pt    torchvision's first names with the wrong shapes, and a name torchvision lacks

The values are chosen to be exact in their element type, so the test can state them by hand.
"""
import os
import sys
from collections import OrderedDict

import torch
import torch.nn as nn


def small():
    base = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    ramp = torch.arange(10, dtype=torch.float32)
    sd = OrderedDict()
    sd['conv.weight'] = torch.arange(8, dtype=torch.float32).reshape(2, 1, 2, 2) * 0.5 - 1   # -1, -0.5, ..., 2.5
    sd['conv.bias'] = torch.tensor([0.1, -65504.0], dtype=torch.float16)                    # 0.0999755859375, -65504
    sd['fc.weight'] = torch.tensor([[3.14159, -2.5], [1.0, 0.0078125]], dtype=torch.bfloat16)  # pi -> 3.140625
    sd['fc.bias'] = torch.tensor([1.0 / 3.0, -1e-3], dtype=torch.float64)
    sd['transposed'] = base.t()              # shape [3, 2], stride [1, 3]
    sd['sliced'] = ramp[3:7]                 # offset 3
    sd['strided'] = ramp[::3]                # stride 3, same storage as 'sliced'
    sd['count'] = torch.tensor(7, dtype=torch.int64)
    sd['mask'] = torch.tensor([True, False, True])
    sd['param'] = nn.Parameter(torch.tensor([1.5, -2.0]))
    sd._metadata = OrderedDict([('', {'version': 1})])
    return sd


def not_alexnet():
    sd = OrderedDict()
    sd['features.0.weight'] = torch.zeros(4, 3, 3, 3)
    sd['features.0.bias'] = torch.zeros(4)
    sd['fc.weight'] = torch.zeros(1)
    return sd


if __name__ == '__main__':
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    torch.save(small(), os.path.join(out, 'small.pt'))
    torch.save(small(), os.path.join(out, 'small-legacy.pt'), _use_new_zipfile_serialization=False)
    torch.save(not_alexnet(), os.path.join(out, 'not-alexnet.pt'))
    print('torch', torch.__version__, 'wrote', sorted(os.listdir(out)))

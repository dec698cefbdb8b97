#!/usr/bin/python3
"""Writes data/ilsvrc2012-classes.json, the 1000 ILSVRC-2012 classes in the standard order (the order of
torchvision's and Caffe's outputs: the WordNet ids sorted), each as [wnid, name] with the name as
LOC_synset_mapping.txt writes it (the synset's words joined by ", ").

Everything comes from Debian packages, so it can be made again offline:
  - the 1000 WordNet ids: the first 1000 lines of darknet's data/imagenet.labels.list (package darknet,
    MIT-licensed; darknet's cfg/imagenet1k.data reads exactly those 1000 lines as its classes). Unpack
    it without installing: apt-get download darknet && dpkg-deb -x darknet_*.deb DIR
  - the words of each synset: WordNet 3.0's data.noun (package wordnet-base); an ImageNet id is "n"
    followed by the synset's offset in that file
  - a cross-check of the order: torchvision's own category names (package python3-torchvision,
    torchvision.models._meta._IMAGENET_CATEGORIES): class i's name must be one of the words of the
    synset at place i (torchvision writes "crane bird" and "maillot tank suit" for the second of two
    synsets with the same first word)

    /usr/bin/python3 scripts/make-classes.py DARKNET_DIR/usr/share/darknet/data/imagenet.labels.list
"""
import json
import sys

from torchvision.models._meta import _IMAGENET_CATEGORIES as TORCHVISION

labels_list = sys.argv[1]
data_noun = sys.argv[2] if len(sys.argv) > 2 else '/usr/share/wordnet/data.noun'
out = sys.argv[3] if len(sys.argv) > 3 else 'data/ilsvrc2012-classes.json'

words = {}
for line in open(data_noun, encoding='utf-8'):
    if line.startswith('  '):  # the license header
        continue
    f = line.split(' ')
    count = int(f[3], 16)
    words['n' + f[0]] = [f[4 + 2 * i].replace('_', ' ') for i in range(count)]

wnids = [l.strip() for l in open(labels_list) if l.strip()][:1000]
assert len(set(wnids)) == 1000, 'expected 1000 distinct WordNet ids'
wnids.sort()

classes = []
for i, wnid in enumerate(wnids):
    ws = words[wnid]
    short = TORCHVISION[i]
    lower = [w.lower() for w in ws]
    ok = short.lower() in lower or (short == 'crane bird' and 'crane' in lower) or (short == 'maillot tank suit' and 'tank suit' in lower)
    assert ok, f'class {i}: {wnid} is {ws}, but torchvision calls class {i} {short!r}'
    classes.append([wnid, ', '.join(ws)])

with open(out, 'w') as f:
    f.write('[\n' + ',\n'.join(json.dumps(c) for c in classes) + '\n]\n')
print('wrote', out, len(classes), 'classes;', classes[0], '...', classes[-1])

"""pycocotools' answers for the random RLE and polygon cases of tests/data/test_coco_peer.cpp.

Usage: coco_rle.py IN.json OUT.json (run with the peers on PYTHONPATH, tests/peers.h).

IN.json (mask files are .npy of uint8, shape [h, w], next to IN.json):
  masks:    [{file, h, w, ours: our compressed counts, ours_counts: our uncompressed counts}]
  pairs:    [[i, j]]                        mask indices of the same size
  groups:   [{dt: [i..], gt: [j..], crowd: [0/1 per gt]}]
  polygons: [{h, w, polys: [[x0, y0, ...], ...], boxes: [[x, y, bw, bh], ...]}]
OUT.json, in the same order:
  masks:    [{counts, area, bbox, decodes_ours, from_uncompressed}]
            counts: mask.encode of the array; decodes_ours: mask.decode(our string) equals the
            array (nonzero = 1); from_uncompressed: frPyObjects of our uncompressed counts
  pairs:    [{union, inter, iou, iou_crowd}]    merge of the two and iou(dt=[i], gt=[j], [0]/[1])
  groups:   [{iou: [[...]] (dt x gt), union, inter}]
  polygons: [{polys: [counts per polygon], merged, boxes: [counts per box]}]
"""
import json
import os
import sys

import numpy as np
from pycocotools import mask as M


def counts(r):
    return r['counts'].decode('ascii')


def main(in_path, out_path):
    with open(in_path) as f:
        cfg = json.load(f)
    folder = os.path.dirname(os.path.abspath(in_path))
    out = {'masks': [], 'pairs': [], 'groups': [], 'polygons': []}

    enc = []
    for m in cfg['masks']:
        h, w = m['h'], m['w']
        a = np.load(os.path.join(folder, m['file']))
        assert a.dtype == np.uint8 and a.shape == (h, w), (m['file'], a.dtype, a.shape)
        r = M.encode(np.asfortranarray(a))
        dec = M.decode({'size': [h, w], 'counts': m['ours'].encode('ascii')})
        same = dec.shape == (h, w) and np.array_equal(dec, (a != 0).astype(np.uint8))
        unc = M.frPyObjects({'size': [h, w], 'counts': m['ours_counts']}, h, w)
        out['masks'].append({
            'counts': counts(r),
            'area': int(M.area(r)),
            'bbox': [float(v) for v in M.toBbox(r)],
            'decodes_ours': bool(same),
            'from_uncompressed': counts(unc),
        })
        enc.append(r)

    for i, j in cfg['pairs']:
        a, b = enc[i], enc[j]
        out['pairs'].append({
            'union': counts(M.merge([a, b], intersect=0)),
            'inter': counts(M.merge([a, b], intersect=1)),
            'iou': float(M.iou([a], [b], [0])[0][0]),
            'iou_crowd': float(M.iou([a], [b], [1])[0][0]),
        })

    for g in cfg['groups']:
        dt = [enc[i] for i in g['dt']]
        gt = [enc[j] for j in g['gt']]
        ious = M.iou(dt, gt, g['crowd'])
        members = dt + gt
        out['groups'].append({
            'iou': [[float(v) for v in row] for row in np.asarray(ious).reshape(len(dt), len(gt))],
            'union': counts(M.merge(members, intersect=0)),
            'inter': counts(M.merge(members, intersect=1)),
        })

    for p in cfg['polygons']:
        h, w = p['h'], p['w']
        rles = M.frPyObjects(p['polys'], h, w)
        o = {'polys': [counts(r) for r in rles], 'merged': counts(M.merge(rles)), 'boxes': []}
        if p['boxes']:
            # As an n x 4 array: frPyObjects takes a list of 4-lists for boxes too, but 2.0.11's
            # frBbox then rejects the list.
            boxes = np.array(p['boxes'], dtype=np.double).reshape(-1, 4)
            o['boxes'] = [counts(r) for r in M.frPyObjects(boxes, h, w)]
        out['polygons'].append(o)

    with open(out_path, 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])

"""pycocotools' COCOeval on the random cases of tests/eval/test_coco_eval_peer.cpp.

Usage: coco_eval.py IN.json OUT.json (run with the peers on PYTHONPATH, tests/peers.h).

IN.json: {cases: [{dataset: a COCO ground-truth dict (images, annotations, categories),
                   runs: [{iou_type: 'segm' | 'bbox', results: the loadRes list (may be empty:
                           loadRes fails on one, so an empty results set is made by hand),
                           img_ids, cat_ids (optional: params.imgIds / catIds),
                           use_cats (optional, default 1), max_dets (optional),
                           precision_file: where eval['precision'] goes, next to IN.json}]}]}
OUT.json: {cases: [{runs: [{stats: summarize()'s 12 numbers, recall: eval['recall'] flattened
                            (C order), shape: eval['counts'] = [T, R, K, A, M]}]}]}
"""
import contextlib
import copy
import io
import json
import os
import sys

import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def evaluate(dataset, run):
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = copy.deepcopy(dataset)
        gt.createIndex()
        if run['results']:
            dt = gt.loadRes(copy.deepcopy(run['results']))
        else:
            dt = COCO()
            dt.dataset = {'images': list(gt.dataset['images']),
                          'categories': copy.deepcopy(gt.dataset['categories']),
                          'annotations': []}
            dt.createIndex()
        E = COCOeval(gt, dt, run['iou_type'])
        if 'img_ids' in run:
            E.params.imgIds = run['img_ids']
        if 'cat_ids' in run:
            E.params.catIds = run['cat_ids']
        if 'use_cats' in run:
            E.params.useCats = run['use_cats']
        if 'max_dets' in run:
            E.params.maxDets = run['max_dets']
        E.evaluate()
        E.accumulate()
        E.summarize()
    return E


def main(in_path, out_path):
    with open(in_path) as f:
        cfg = json.load(f)
    folder = os.path.dirname(os.path.abspath(in_path))
    out = {'cases': []}
    for case in cfg['cases']:
        runs = []
        for run in case['runs']:
            E = evaluate(case['dataset'], run)
            np.save(os.path.join(folder, run['precision_file']),
                    np.ascontiguousarray(E.eval['precision'], dtype=np.float64))
            runs.append({
                'stats': [float(v) for v in E.stats],
                'recall': [float(v) for v in np.asarray(E.eval['recall']).ravel()],
                'shape': [int(v) for v in E.eval['counts']],
            })
        out['cases'].append({'runs': runs})
    with open(out_path, 'w') as f:
        json.dump(out, f)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])

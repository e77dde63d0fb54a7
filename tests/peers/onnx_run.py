#!/usr/bin/env python3
"""Runs an ONNX file in onnxruntime (CPU) on prepared inputs, for the sam_export tests.

Every sub-folder of --cases holds one case: an <input name>.npy per graph input. The outputs are
written beside them as out<k>.npy, by position (Meta's own export names its outputs
inconsistently), and their names and shapes are printed as JSON. --check first runs onnx's checker
with full_check (strict shape inference) on the file.

Usage: onnx_run.py --model decoder.onnx --cases DIR [--check] [--threads 2]
"""
import argparse
import json
import os

import numpy as np
import onnx
import onnxruntime as ort


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", required=True)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    if args.check:
        onnx.checker.check_model(args.model, full_check=True)
    so = ort.SessionOptions()
    so.intra_op_num_threads = args.threads
    sess = ort.InferenceSession(args.model, so, providers=["CPUExecutionProvider"])
    report = {
        "inputs": [[i.name, i.shape] for i in sess.get_inputs()],
        "outputs": [[o.name, o.shape] for o in sess.get_outputs()],
        "cases": {},
    }
    for case in sorted(os.listdir(args.cases)):
        d = os.path.join(args.cases, case)
        if not os.path.isdir(d):
            continue
        feeds = {i.name: np.load(os.path.join(d, i.name + ".npy")) for i in sess.get_inputs()}
        outs = sess.run(None, feeds)
        for k, v in enumerate(outs):
            np.save(os.path.join(d, "out%d.npy" % k), np.ascontiguousarray(v))
        report["cases"][case] = [list(v.shape) for v in outs]
    print(json.dumps(report))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Meta's ONNX export of the SAM decoder, as its scripts/export_onnx_model.py does it.

The script is not part of the `segment-anything` wheel; these are its export_decoder steps on the
wheel's SamOnnxModel: the model from sam_model_registry[model_type](checkpoint), the GELU
modules switched to tanh for --gelu-approximate, the same dummy inputs, input and output names,
dynamic axes (num_points) and torch.onnx.export settings (opset 17, constant folding). The tests
export the same checkpoint with sam_export and compare both files' outputs in onnxruntime.

Usage: meta_onnx_export.py --checkpoint sam.pth --model-type vit_b --out decoder.onnx
                           [--return-single-mask] [--use-stability-score] [--return-extra-metrics]
                           [--gelu-approximate] [--opset 17]
"""
import argparse
import warnings

import torch

from segment_anything import sam_model_registry
from segment_anything.utils.onnx import SamOnnxModel


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--model-type", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--return-single-mask", action="store_true")
    ap.add_argument("--use-stability-score", action="store_true")
    ap.add_argument("--return-extra-metrics", action="store_true")
    ap.add_argument("--gelu-approximate", action="store_true")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()
    torch.set_num_threads(2)

    sam = sam_model_registry[args.model_type](checkpoint=args.checkpoint)
    onnx_model = SamOnnxModel(
        model=sam,
        return_single_mask=args.return_single_mask,
        use_stability_score=args.use_stability_score,
        return_extra_metrics=args.return_extra_metrics,
    )
    if args.gelu_approximate:
        for _, m in onnx_model.named_modules():
            if isinstance(m, torch.nn.GELU):
                m.approximate = "tanh"
    dynamic_axes = {"point_coords": {1: "num_points"}, "point_labels": {1: "num_points"}}
    embed_dim = sam.prompt_encoder.embed_dim
    embed_size = sam.prompt_encoder.image_embedding_size
    mask_input_size = [4 * x for x in embed_size]
    dummy_inputs = {
        "image_embeddings": torch.randn(1, embed_dim, *embed_size, dtype=torch.float),
        "point_coords": torch.randint(low=0, high=1024, size=(1, 5, 2), dtype=torch.float),
        "point_labels": torch.randint(low=0, high=4, size=(1, 5), dtype=torch.float),
        "mask_input": torch.randn(1, 1, *mask_input_size, dtype=torch.float),
        "has_mask_input": torch.tensor([1], dtype=torch.float),
        "orig_im_size": torch.tensor([1500, 2250], dtype=torch.float),
    }
    _ = onnx_model(**dummy_inputs)
    output_names = ["masks", "iou_predictions", "low_res_masks"]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", category=UserWarning)
        torch.onnx.export(
            onnx_model,
            tuple(dummy_inputs.values()),
            args.out,
            export_params=True,
            verbose=False,
            opset_version=args.opset,
            do_constant_folding=True,
            input_names=list(dummy_inputs.keys()),
            output_names=output_names,
            dynamic_axes=dynamic_axes,
        )


if __name__ == "__main__":
    main()

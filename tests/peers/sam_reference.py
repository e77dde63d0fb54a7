#!/usr/bin/env python3
"""Runs Meta's reference `segment_anything` (v1.0) live for the peer-reference tests.

Builds `sam_model_registry[preset]()` with a fixed seed, saves its weights with torch.save (the
official format: a state_dict, an OrderedDict) and writes what the reference computes from them:

  always      sam.pth (the weights) and image.pt: the image as PIL decodes it ("image", uint8
               HxWx3) and the encoder input as the reference resizes it ("input_image").
  --predictor  outputs.pt: a plain dict of tensors (torch::pickle_load reads it) with the image
               embedding and, for every prompt case (one point, positive + negative points, box,
               box + point, point + mask input, batched boxes through predict_torch), the prompts
               given and the reference's low-res logits, IoU predictions, full-size logits and
               masks.
  --amg        amg.json: SamAutomaticMaskGenerator's records (uncompressed RLE) and its parameters,
               in the form of the golden amg.json.

The weights are the reference's own random initialisation with two deterministic changes, both made
before anything is computed and saved with the weights, so both sides run the same model:
  * every parameter that the initialisation leaves constant (the ViT's position embedding and
    relative-position tables, all zeros; LayerNorm weights and biases, ones and zeros) gets
    N(0, 0.1^2) added, so that a mistake in any of them shows in the outputs;
  * the last layer of each output hypernetwork is multiplied by 10: with random weights the mask
    logits otherwise stay within about +-0.3, where the generator's stability score (offset 1) is 0
    for every mask. Scaling changes no mask's sign; it only spreads the logits.

Usage: sam_reference.py --preset vit_b --image image.jpg --out DIR [--predictor] [--amg]
                        [--seed 0] [--threads 2]
Prints one JSON line: the timings (seconds, [wall, process CPU]) and the peak memory.
"""
import argparse
import json
import os
import resource
import time

import numpy as np
import torch
from PIL import Image

from segment_anything import SamAutomaticMaskGenerator, SamPredictor, sam_model_registry

# The generator's parameters (output_mode uncompressed RLE; no hole/island cleanup: the reference
# needs OpenCV's Python module for it, which the peers do not have). With random weights every mask
# is a fine-grained texture spread over the whole image, so every box is the whole image (box IoU
# exactly 1) and any box NMS threshold below 1 leaves a single mask: the box NMS is off
# (threshold 1.0; torchvision suppresses IoU > threshold only) and the two filters sit near the
# medians of the random model's scores (predicted IoU about 0.04, stability about 0.1 with
# offset 1), so that they keep roughly a third of the 8x8 grid's 192 candidates. No crop layers: each
# crop costs one more encoder pass (crops, NMS and cleanup are covered by the golden amg.json).
AMG_PARAMS = {
    "points_per_side": 8,
    "points_per_batch": 64,
    "pred_iou_thresh": 0.03,
    "stability_score_thresh": 0.1,
    "stability_score_offset": 1.0,
    "box_nms_thresh": 1.0,
    "crop_n_layers": 0,
    "crop_nms_thresh": 0.7,
    "crop_overlap_ratio": 512 / 1500,
    "crop_n_points_downscale_factor": 1,
    "min_mask_region_area": 0,
    "output_mode": "uncompressed_rle",
}


def build(preset, seed):
    torch.manual_seed(seed)
    sam = sam_model_registry[preset]()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for _, p in sam.named_parameters():
            if p.numel() > 1 and bool(p.min() == p.max()):
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
        for mlp in sam.mask_decoder.output_hypernetworks_mlps:
            mlp.layers[-1].weight.mul_(10.0)
            mlp.layers[-1].bias.mul_(10.0)
    sam.eval()
    return sam


def t(x):
    """numpy or torch -> a contiguous CPU torch tensor."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    return x.detach().cpu().contiguous()


def predictor_cases(predictor, out):
    """Every prompt type, in original-image pixels of a 640x480 image. One call per case with
    return_logits=True; the masks are its logits > mask_threshold, the reference's own
    thresholding (predict() does exactly this when return_logits is False)."""
    cases = [
        ("point1", dict(point_coords=[[407.66, 129.5]], point_labels=[1]), True),
        ("points2", dict(point_coords=[[300.0, 220.0], [520.49, 438.12]], point_labels=[1, 0]), False),
        ("box", dict(box=[128.0, 120.0, 448.0, 384.0]), False),
        ("box_point", dict(box=[128.0, 120.0, 448.0, 384.0], point_coords=[[388.25, 350.16]],
                           point_labels=[0]), True),
        ("point_mask", dict(point_coords=[[347.92, 448.83]], point_labels=[1]), False),
    ]
    for name, prompt, multimask in cases:
        kw = {k: np.array(v, dtype=np.int64 if k == "point_labels" else np.float32)
              for k, v in prompt.items()}
        if name == "point_mask":
            # The mask input: point1's low-res logits of its highest-IoU mask.
            low, iou = out["point1.low_res_logits"], out["point1.iou"]
            kw["mask_input"] = low[int(iou.argmax())][None].numpy()
            out[name + ".mask_input"] = t(kw["mask_input"])
        for k, v in kw.items():
            if k != "mask_input":
                out[f"{name}.{k}"] = t(v)
        logits, iou, low = predictor.predict(**kw, multimask_output=multimask, return_logits=True)
        masks = logits > predictor.model.mask_threshold  # what predict() does without return_logits
        out[name + ".multimask"] = torch.tensor(multimask)
        out[name + ".masks"] = t(masks)
        out[name + ".iou"] = t(iou)
        out[name + ".low_res_logits"] = t(low)
        out[name + ".logits"] = t(logits)

    # Batched boxes through predict_torch (boxes in the encoder's frame, as the reference expects).
    boxes = torch.tensor([[128.0, 120.0, 448.0, 384.0], [0.0, 0.0, 320.0, 240.0],
                          [213.33, 160.0, 639.0, 479.0]])
    tb = predictor.transform.apply_boxes_torch(boxes, predictor.original_size)
    logits, iou, low = predictor.predict_torch(None, None, boxes=tb, multimask_output=True,
                                               return_logits=True)
    masks = logits > predictor.model.mask_threshold
    out["boxes3.boxes"] = t(boxes)
    out["boxes3.multimask"] = torch.tensor(True)
    out["boxes3.masks"] = t(masks)
    out["boxes3.iou"] = t(iou)
    out["boxes3.low_res_logits"] = t(low)
    out["boxes3.logits"] = t(logits)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--preset", required=True, choices=["vit_b", "vit_l", "vit_h"])
    ap.add_argument("--image", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--predictor", action="store_true")
    ap.add_argument("--amg", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.makedirs(a.out, exist_ok=True)
    times = {}

    def clock():
        return time.perf_counter(), time.process_time()

    def since(start):
        return round(time.perf_counter() - start[0], 3), round(time.process_time() - start[1], 3)

    c = clock()
    sam = build(a.preset, a.seed)
    torch.save(sam.state_dict(), os.path.join(a.out, "sam.pth"))
    times["build_save"] = since(c)
    image = np.array(Image.open(a.image).convert("RGB"))
    # The image as PIL decoded it and the encoder's input as the reference resizes it.
    resized = SamPredictor(sam).transform.apply_image(image)
    torch.save({"image": t(image), "input_image": t(resized)}, os.path.join(a.out, "image.pt"))

    with torch.no_grad():
        if a.predictor:
            predictor = SamPredictor(sam)
            out = {}
            c = clock()
            predictor.set_image(image)
            times["embedding"] = since(c)
            out["image_embedding"] = t(predictor.get_image_embedding())
            c = clock()
            predictor_cases(predictor, out)
            times["prompts"] = since(c)
            torch.save(out, os.path.join(a.out, "outputs.pt"))
        if a.amg:
            params = dict(AMG_PARAMS)
            gen = SamAutomaticMaskGenerator(sam, **params)
            c = clock()
            records = gen.generate(image)
            times["amg"] = since(c)
            for r in records:
                r["segmentation"] = {"size": [int(s) for s in r["segmentation"]["size"]],
                                     "counts": [int(n) for n in r["segmentation"]["counts"]]}
            with open(os.path.join(a.out, "amg.json"), "w") as f:
                json.dump({"params": params, "masks": records}, f)
            times["amg_masks"] = len(records)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"preset": a.preset, "threads": a.threads, "times": times,
                      "peak_rss_mib": round(peak_mib, 1)}))


if __name__ == "__main__":
    main()

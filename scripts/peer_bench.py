#!/usr/bin/env python3
"""Meta's reference SAM (segment_anything, from PyPI via scripts/peers.sh) timed on this machine, for
scripts/bench_peer.sh, which runs it beside our programs in the same minutes.

  embed  : ViT-B (random weights) image encoder on one 1024x1024 input, --embeds times
  prompt : one positive point through SamPredictor.predict at a 1024x768 original (3 masks,
           post-processing to the original size, thresholded), --prompts times
  amg    : SamAutomaticMaskGenerator with the golden tiny model (../shared/golden/tiny: its
           config, weights and image), 32x32 points in batches of 64, no crops, predicted-IoU
           threshold 0, stability 0.5, no hole filling (the reference's needs OpenCV's Python
           module), binary masks; --amg-runs times (--golden DIR)
  train  : a plain PyTorch training loop over Meta's modules at the tiny architecture
           (configs/model_tiny.json): 8 images of 256 px, one mask each, one point, one round,
           focal 20 : dice 1 + IoU MSE, AdamW; synthetic inputs (no data loading, which favours
           the reference), --steps timed steps after 3 warm-up steps
Prints one JSON object. Threads: --threads (torch.set_num_threads).
"""
import argparse
import json
import time
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from segment_anything import SamPredictor, sam_model_registry
from segment_anything.modeling import (ImageEncoderViT, MaskDecoder, PromptEncoder, Sam,
                                       TwoWayTransformer)


def gemm_gflops(threads):
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    for _ in range(2):
        a @ b
    t = []
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        t.append(time.perf_counter() - t0)
    return 2 * 2048 ** 3 / min(t) / 1e9


def tiny_sam(config=None):
    arch = json.load(open(config or __file__.rsplit("/", 2)[0] + "/configs/model_tiny.json"))
    grid = arch["img_size"] // arch["patch_size"]
    return Sam(
        image_encoder=ImageEncoderViT(
            depth=arch["depth"], embed_dim=arch["embed_dim"], img_size=arch["img_size"],
            mlp_ratio=arch["mlp_ratio"], norm_layer=partial(torch.nn.LayerNorm, eps=arch["layer_norm_eps"]),
            num_heads=arch["num_heads"], patch_size=arch["patch_size"], qkv_bias=True, use_rel_pos=True,
            global_attn_indexes=arch["global_attn_indexes"], window_size=arch["window_size"],
            out_chans=arch["prompt_dim"]),
        prompt_encoder=PromptEncoder(
            embed_dim=arch["prompt_dim"], image_embedding_size=(grid, grid),
            input_image_size=(arch["img_size"], arch["img_size"]), mask_in_chans=arch["mask_in_chans"]),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=arch["num_multimask_outputs"],
            transformer=TwoWayTransformer(depth=arch["decoder_depth"], embedding_dim=arch["prompt_dim"],
                                          mlp_dim=arch["decoder_mlp_dim"], num_heads=arch["decoder_heads"]),
            transformer_dim=arch["prompt_dim"], iou_head_depth=arch["iou_head_depth"],
            iou_head_hidden_dim=arch["iou_head_hidden_dim"]),
        pixel_mean=arch["pixel_mean"], pixel_std=arch["pixel_std"]), arch


def train_steps(steps):
    torch.manual_seed(0)
    sam, arch = tiny_sam()
    sam.train()
    s = arch["img_size"]
    opt = torch.optim.AdamW(sam.parameters(), lr=1e-4, weight_decay=0.05)
    g = torch.Generator().manual_seed(1)
    images = torch.rand(8, 3, s, s, generator=g) * 255
    yy, xx = torch.meshgrid(torch.arange(s), torch.arange(s), indexing="ij")
    cy = torch.randint(64, 192, (8,), generator=g)
    cx = torch.randint(64, 192, (8,), generator=g)
    gt = (((yy[None] - cy[:, None, None]) ** 2 + (xx[None] - cx[:, None, None]) ** 2) < 40 ** 2).float()
    points = torch.stack([cx, cy], 1).float()[:, None, :]
    labels = torch.ones(8, 1)

    def step():
        x = (images - sam.pixel_mean) / sam.pixel_std
        emb = sam.image_encoder(x)
        sparse, dense = sam.prompt_encoder(points=(points, labels), boxes=None, masks=None)
        # Meta's decoder takes one image embedding and its prompts: one call per image, as Sam.forward.
        outs = [sam.mask_decoder(image_embeddings=emb[i:i + 1], image_pe=sam.prompt_encoder.get_dense_pe(),
                                 sparse_prompt_embeddings=sparse[i:i + 1], dense_prompt_embeddings=dense[i:i + 1],
                                 multimask_output=True) for i in range(emb.shape[0])]
        low = torch.cat([o[0] for o in outs])
        iou = torch.cat([o[1] for o in outs])
        logits = F.interpolate(low, (s, s), mode="bilinear", align_corners=False)
        t = gt[:, None].expand_as(logits)
        p = torch.sigmoid(logits)
        ce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
        pt = p * t + (1 - p) * (1 - t)
        focal = (0.25 * t + 0.75 * (1 - t)) * ce * (1 - pt) ** 2
        focal = focal.flatten(2).mean(-1)
        dice = 1 - (2 * (p * t).flatten(2).sum(-1) + 1) / (p.flatten(2).sum(-1) + t.flatten(2).sum(-1) + 1)
        with torch.no_grad():
            m = logits > 0
            inter = (m & (t > 0)).flatten(2).sum(-1).float()
            union = (m | (t > 0)).flatten(2).sum(-1).float()
            true_iou = inter / union.clamp(min=1)
        per = 20 * focal + dice
        best = per.argmin(1)
        idx = torch.arange(per.shape[0])
        loss = per[idx, best].mean() + F.mse_loss(iou, true_iou)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(3):
        step()
    t = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        t.append(time.perf_counter() - t0)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["gemm", "embed", "prompt", "amg", "train"])
    ap.add_argument("--golden", default=__file__.rsplit("/", 3)[0] + "/shared/golden/tiny")
    ap.add_argument("--amg-runs", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--embeds", type=int, default=2)
    ap.add_argument("--embed-warmup", type=int, default=0, help="untimed embeddings first")
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--steps", type=int, default=40)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = {"what": a.what, "threads": a.threads, "torch": torch.__version__}
    if a.what == "gemm":
        out["gemm_gflops"] = gemm_gflops(a.threads)
    elif a.what in ("embed", "prompt"):
        torch.manual_seed(0)
        sam = sam_model_registry["vit_b"]()
        sam.eval()
        with torch.no_grad():
            if a.what == "embed":
                x = torch.randn(1, 3, 1024, 1024)
                for _ in range(a.embed_warmup):
                    sam.image_encoder(x)
                t = []
                for _ in range(a.embeds):
                    t0 = time.perf_counter()
                    sam.image_encoder(x)
                    t.append(time.perf_counter() - t0)
                out["embed_s"] = t
                out["embed_s_median"] = float(np.median(t))
            else:
                pred = SamPredictor(sam)
                image = (np.random.default_rng(0).random((768, 1024, 3)) * 255).astype(np.uint8)
                pred.set_image(image)
                t = []
                for i in range(a.prompts + 3):
                    pt = np.array([[100 + 7 * i, 200 + 3 * i]], dtype=np.float32)
                    t0 = time.perf_counter()
                    pred.predict(point_coords=pt, point_labels=np.array([1]), multimask_output=True)
                    if i >= 3:
                        t.append(time.perf_counter() - t0)
                out["prompt_ms_median"] = 1e3 * float(np.median(t))
                out["prompt_ms_min"] = 1e3 * float(np.min(t))
    elif a.what == "amg":
        from PIL import Image
        from segment_anything import SamAutomaticMaskGenerator
        sam, _ = tiny_sam(a.golden + "/config.json")
        sam.load_state_dict(torch.load(a.golden + "/sam.pth", map_location="cpu"))
        sam.eval()
        image = np.array(Image.open(a.golden + "/image.jpg").convert("RGB"))
        gen = SamAutomaticMaskGenerator(sam, points_per_side=32, points_per_batch=64, pred_iou_thresh=0.0,
                                        stability_score_thresh=0.5, crop_n_layers=0, min_mask_region_area=0,
                                        output_mode="binary_mask")
        t = []
        with torch.no_grad():
            for _ in range(a.amg_runs):
                t0 = time.perf_counter()
                masks = gen.generate(image)
                t.append(time.perf_counter() - t0)
        out["amg_s"] = t
        out["amg_s_median"] = float(np.median(t))
        out["amg_masks"] = len(masks)
    else:
        t = train_steps(a.steps)
        out["sec_per_step_median"] = float(np.median(t))
        out["sec_per_step_mean"] = float(np.mean(t))
    print(json.dumps(out))


if __name__ == "__main__":
    main()

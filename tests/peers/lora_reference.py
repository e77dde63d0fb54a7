#!/usr/bin/env python3
"""Meta's `segment_anything` on a LoRA run's files, for tests/train/test_lora_peer.cpp.

  --merged    our merged export (train/lora.h merge_lora): must load with strict=True into
              sam_model_registry[preset]() (the official format);
  --base      the base weights, and --adapters our adapter file (<layer>.lora_A [r, in],
              <layer>.lora_B [out, r], <layer>.lora_scale): the base model with each named
              nn.Linear wrapped in LoRA's unmerged form, y = base(x) + s * B(A(x)), written here.

Runs both, and the base alone, on one seeded image and point prompt (image encoder, prompt
encoder, mask decoder with three masks) and writes a JSON report: the largest difference of the
merged model's outputs from the unmerged one's, relative to the output's largest magnitude, and
the same for the base model (which the adapters must move).

Usage: lora_reference.py --preset vit_b --base B.pth --adapters A.pth --merged M.pth --out R.json
                         [--threads 2]
"""
import argparse
import json

import torch
import torch.nn.functional as F
from torch import nn

from segment_anything import sam_model_registry


class UnmergedLora(nn.Module):
    def __init__(self, base: nn.Linear, a: torch.Tensor, b: torch.Tensor, scale: torch.Tensor):
        super().__init__()
        self.base = base
        self.a = a
        self.b = b
        self.scale = float(scale)

    def forward(self, x):
        return self.base(x) + self.scale * F.linear(F.linear(x, self.a), self.b)


def build(preset, weights):
    model = sam_model_registry[preset]()
    model.load_state_dict(weights, strict=True)
    return model.eval()


def wrap(model, adapters):
    layers = {}
    for key, t in adapters.items():
        layer, _, part = key.rpartition(".")
        layers.setdefault(layer, {})[part] = t
    for layer, parts in layers.items():
        parent_name, _, child = layer.rpartition(".")
        parent = model.get_submodule(parent_name)
        base = getattr(parent, child)
        if not isinstance(base, nn.Linear):
            raise SystemExit(f"{layer} is not an nn.Linear in segment_anything")
        setattr(parent, child, UnmergedLora(base, parts["lora_A"], parts["lora_B"], parts["lora_scale"]))
    return len(layers)


@torch.no_grad()
def outputs(model, image, point):
    x = model.preprocess(image)
    emb = model.image_encoder(x)
    sparse, dense = model.prompt_encoder(points=point, boxes=None, masks=None)
    masks, iou = model.mask_decoder(
        image_embeddings=emb,
        image_pe=model.prompt_encoder.get_dense_pe(),
        sparse_prompt_embeddings=sparse,
        dense_prompt_embeddings=dense,
        multimask_output=True,
    )
    return {"embedding": emb, "masks": masks, "iou": iou}


def rel(a, b):
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="vit_b")
    p.add_argument("--base", required=True)
    p.add_argument("--adapters", required=True)
    p.add_argument("--merged", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)

    merged = build(a.preset, torch.load(a.merged))  # strict: raises on a missing or extra key
    unmerged = build(a.preset, torch.load(a.base))
    base = build(a.preset, torch.load(a.base))
    wrapped = wrap(unmerged, torch.load(a.adapters))

    g = torch.Generator().manual_seed(0)
    size = merged.image_encoder.img_size
    image = torch.rand(1, 3, size, size, generator=g) * 255
    point = (torch.tensor([[[size * 0.4, size * 0.6]]]), torch.tensor([[1]]))
    om, ou, ob = outputs(merged, image, point), outputs(unmerged, image, point), outputs(base, image, point)
    report = {
        "wrapped_layers": wrapped,
        "merged_vs_unmerged": {k: rel(om[k], ou[k]) for k in om},
        "base_vs_unmerged": {k: rel(ob[k], ou[k]) for k in om},
    }
    with open(a.out, "w") as f:
        json.dump(report, f)
    print(json.dumps(report))


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A TinyViT image encoder in plain PyTorch, for tests/sam/test_tiny_vit.cpp.

MobileSAM's encoder (mobile_sam/modeling/tiny_vit_sam.py: TinyViT with its SAM neck, and the
stride-1 merge into the last stage) written here from its description, with its module tree and
key names built from torch.nn modules: a stem of two stride-2 Conv2d+BatchNorm, MBConv blocks,
patch merging, attention blocks (per-head q/k/v layout, a learned bias per |dy|, |dx| offset,
zero-padded windows whose padded tokens take part as keys, a depthwise 3x3 Conv2d+BatchNorm, an
MLP with its own LayerNorm), SAM's neck. Loads our .pth (image_encoder.* keys) with
load_state_dict(strict=True) and writes the embeddings of the given images as .npy, in eval mode
(BatchNorm's running statistics) or train mode (batch statistics).

Usage: tiny_vit_reference.py --ckpt W.pth --images X.npy --dims 16,24,32,48 --depths 1,1,2,1
                             --heads 1,2,2,3 --windows 4,4,4,3 --mlp-ratio 4 --mbconv-ratio 4
                             --out-dim 32 [--train] --out E.npy
"""
import argparse
import itertools

import numpy as np
import torch
from torch import nn
import torch.nn.functional as F


class Conv2dBN(nn.Sequential):
    def __init__(self, a, b, ks=1, stride=1, pad=0, groups=1):
        super().__init__()
        self.add_module("c", nn.Conv2d(a, b, ks, stride, pad, groups=groups, bias=False))
        self.add_module("bn", nn.BatchNorm2d(b))


class PatchEmbed(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.seq = nn.Sequential(Conv2dBN(3, dim // 2, 3, 2, 1), nn.GELU(), Conv2dBN(dim // 2, dim, 3, 2, 1))

    def forward(self, x):
        return self.seq(x)


class MBConv(nn.Module):
    def __init__(self, dim, ratio):
        super().__init__()
        hidden = int(dim * ratio)
        self.conv1 = Conv2dBN(dim, hidden)
        self.conv2 = Conv2dBN(hidden, hidden, 3, 1, 1, groups=hidden)
        self.conv3 = Conv2dBN(hidden, dim)

    def forward(self, x):
        y = self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))
        return F.gelu(y + x)


class PatchMerging(nn.Module):
    def __init__(self, dim, out, stride):
        super().__init__()
        self.conv1 = Conv2dBN(dim, out)
        self.conv2 = Conv2dBN(out, out, 3, stride, 1, groups=out)
        self.conv3 = Conv2dBN(out, out)

    def forward(self, x):  # NCHW -> NCHW
        return self.conv3(F.gelu(self.conv2(F.gelu(self.conv1(x)))))


class Attention(nn.Module):
    def __init__(self, dim, heads, window):
        super().__init__()
        self.heads, self.kd = heads, dim // heads
        self.scale = self.kd ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        points = list(itertools.product(range(window), range(window)))
        offsets, idxs = {}, []
        for p1 in points:
            for p2 in points:
                off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
                if off not in offsets:
                    offsets[off] = len(offsets)
                idxs.append(offsets[off])
        self.attention_biases = nn.Parameter(torch.zeros(heads, len(offsets)))
        self.register_buffer("idx", torch.LongTensor(idxs).view(len(points), len(points)), persistent=False)

    def forward(self, x):
        b, n, c = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, n, self.heads, -1).split([self.kd, self.kd, self.kd], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 1, 3), v.permute(0, 2, 1, 3)
        attn = (q @ k.transpose(-2, -1)) * self.scale + self.attention_biases[:, self.idx]
        return self.proj((attn.softmax(-1) @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(self.norm(x))))


class Block(nn.Module):
    def __init__(self, dim, heads, window, mlp_ratio):
        super().__init__()
        self.ws = window
        self.attn = Attention(dim, heads, window)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.local_conv = Conv2dBN(dim, dim, 3, 1, 1, groups=dim)

    def forward(self, x):  # [B, H, W, C]
        b, h, w, c = x.shape
        ws = self.ws
        pb, pr = (ws - h % ws) % ws, (ws - w % ws) % ws
        y = F.pad(x, (0, 0, 0, pr, 0, pb))
        ph, pw = h + pb, w + pr
        y = y.view(b, ph // ws, ws, pw // ws, ws, c).transpose(2, 3).reshape(-1, ws * ws, c)
        y = self.attn(y)
        y = y.view(b, ph // ws, pw // ws, ws, ws, c).transpose(2, 3).reshape(b, ph, pw, c)[:, :h, :w]
        x = x + y
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class Stage(nn.Module):
    def __init__(self, blocks, downsample, conv):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.downsample = downsample
        self.conv = conv

    def forward(self, x):  # NCHW -> NCHW
        if not self.conv:
            x = x.permute(0, 2, 3, 1)
        for b in self.blocks:
            x = b(x)
        if not self.conv:
            x = x.permute(0, 3, 1, 2)
        return self.downsample(x) if self.downsample is not None else x


class LayerNorm2d(nn.Module):
    def __init__(self, c, eps=1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(c))
        self.bias = nn.Parameter(torch.zeros(c))
        self.eps = eps

    def forward(self, x):
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        return self.weight[:, None, None] * (x - u) / torch.sqrt(s + self.eps) + self.bias[:, None, None]


class TinyViT(nn.Module):
    def __init__(self, dims, depths, heads, windows, mlp_ratio, mbconv_ratio, out_dim):
        super().__init__()
        self.patch_embed = PatchEmbed(dims[0])
        n = len(dims)
        layers = []
        for i in range(n):
            down = PatchMerging(dims[i], dims[i + 1], 2 if i + 2 < n else 1) if i + 1 < n else None
            if i == 0:
                blocks = [MBConv(dims[0], mbconv_ratio) for _ in range(depths[0])]
            else:
                blocks = [Block(dims[i], heads[i], windows[i], mlp_ratio) for _ in range(depths[i])]
            layers.append(Stage(blocks, down, i == 0))
        self.layers = nn.ModuleList(layers)
        self.neck = nn.Sequential(nn.Conv2d(dims[-1], out_dim, 1, bias=False), LayerNorm2d(out_dim),
                                  nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False), LayerNorm2d(out_dim))

    def forward(self, x):
        x = self.patch_embed(x)
        for layer in self.layers:
            x = layer(x)
        return self.neck(x)


def ints(s):
    return [int(v) for v in s.split(",")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ckpt", required=True)
    ap.add_argument("--images", required=True)
    ap.add_argument("--dims", type=ints, required=True)
    ap.add_argument("--depths", type=ints, required=True)
    ap.add_argument("--heads", type=ints, required=True)
    ap.add_argument("--windows", type=ints, required=True)
    ap.add_argument("--mlp-ratio", type=float, default=4.0)
    ap.add_argument("--mbconv-ratio", type=float, default=4.0)
    ap.add_argument("--out-dim", type=int, required=True)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    model = TinyViT(a.dims, a.depths, a.heads, a.windows, a.mlp_ratio, a.mbconv_ratio, a.out_dim)
    sd = torch.load(a.ckpt, map_location="cpu")
    enc = {k[len("image_encoder."):]: v for k, v in sd.items() if k.startswith("image_encoder.")}
    model.load_state_dict(enc, strict=True)
    model.train(a.train)
    with torch.no_grad():
        out = model(torch.from_numpy(np.load(a.images)))
    np.save(a.out, out.numpy())


if __name__ == "__main__":
    main()

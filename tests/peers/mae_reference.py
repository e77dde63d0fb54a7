#!/usr/bin/env python3
"""MAE's forward pass in plain PyTorch, for tests/train/test_mae_peer.cpp.

The model of MAE's models_mae.py (MaskedAutoencoderViT with timm 0.3's Block: pre-norm, qkv with
bias, exact GELU, LayerNorm eps 1e-6), written here from the paper's description and MAE's key
layout. Loads our file with torch.load(...)["model"] and load_state_dict(strict=True), runs the
encoder on the patches that the given noise keeps (argsort, lowest first), the decoder, and the
loss on the removed patches against per-patch-normalised (or raw) pixels; writes the per-image
loss and the predictions as .npy.

Usage: mae_reference.py --ckpt M.pth --images X.npy --noise N.npy --patch P --embed C --depth D
                        --heads H --dec-embed E --dec-depth K --dec-heads J --mask-ratio R
                        [--norm-pix 1] --loss OUT_LOSS.npy --pred OUT_PRED.npy
"""
import argparse

import numpy as np
import torch
from torch import nn


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, c // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = ((q @ k.transpose(-2, -1)) * self.scale).softmax(dim=-1)
        return self.proj((attn @ v).transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x)))


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, dim * 4)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, patch, dim):
        super().__init__()
        self.proj = nn.Conv2d(3, dim, kernel_size=patch, stride=patch)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class MAE(nn.Module):
    def __init__(self, a, num_patches):
        super().__init__()
        self.a = a
        self.cls_token = nn.Parameter(torch.zeros(1, 1, a.embed))
        self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, a.embed), requires_grad=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, a.dec_embed))
        self.decoder_pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, a.dec_embed), requires_grad=False)
        self.patch_embed = PatchEmbed(a.patch, a.embed)
        self.blocks = nn.ModuleList([Block(a.embed, a.heads) for _ in range(a.depth)])
        self.norm = nn.LayerNorm(a.embed, eps=1e-6)
        self.decoder_embed = nn.Linear(a.embed, a.dec_embed)
        self.decoder_blocks = nn.ModuleList([Block(a.dec_embed, a.dec_heads) for _ in range(a.dec_depth)])
        self.decoder_norm = nn.LayerNorm(a.dec_embed, eps=1e-6)
        self.decoder_pred = nn.Linear(a.dec_embed, a.patch ** 2 * 3)

    def patchify(self, imgs):
        p = self.a.patch
        h = w = imgs.shape[2] // p
        x = imgs.reshape(imgs.shape[0], 3, h, p, w, p)
        return torch.einsum("nchpwq->nhwpqc", x).reshape(imgs.shape[0], h * w, p * p * 3)

    def forward(self, imgs, noise):
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:, :]
        n, length, d = x.shape
        keep = int(length * (1 - self.a.mask_ratio))
        ids_shuffle = torch.argsort(noise, dim=1)
        ids_restore = torch.argsort(ids_shuffle, dim=1)
        x = torch.gather(x, 1, ids_shuffle[:, :keep].unsqueeze(-1).repeat(1, 1, d))
        mask = torch.ones(n, length)
        mask[:, :keep] = 0
        mask = torch.gather(mask, 1, ids_restore)
        cls = (self.cls_token + self.pos_embed[:, :1, :]).expand(n, -1, -1)
        x = torch.cat([cls, x], dim=1)
        for blk in self.blocks:
            x = blk(x)
        x = self.decoder_embed(self.norm(x))
        tokens = self.mask_token.repeat(n, ids_restore.shape[1] + 1 - x.shape[1], 1)
        x_ = torch.cat([x[:, 1:, :], tokens], dim=1)
        x_ = torch.gather(x_, 1, ids_restore.unsqueeze(-1).repeat(1, 1, x.shape[2]))
        x = torch.cat([x[:, :1, :], x_], dim=1) + self.decoder_pos_embed
        for blk in self.decoder_blocks:
            x = blk(x)
        pred = self.decoder_pred(self.decoder_norm(x))[:, 1:, :]
        target = self.patchify(imgs)
        if self.a.norm_pix:
            mean = target.mean(dim=-1, keepdim=True)
            var = target.var(dim=-1, keepdim=True)
            target = (target - mean) / (var + 1.0e-6) ** 0.5
        loss = ((pred - target) ** 2).mean(dim=-1)
        return (loss * mask).sum(1) / mask.sum(1), pred


def main():
    ap = argparse.ArgumentParser()
    for k in ("ckpt", "images", "noise", "loss", "pred"):
        ap.add_argument("--" + k, required=True)
    for k in ("patch", "embed", "depth", "heads", "dec-embed", "dec-depth", "dec-heads"):
        ap.add_argument("--" + k, type=int, required=True)
    ap.add_argument("--mask-ratio", type=float, required=True)
    ap.add_argument("--norm-pix", type=int, default=1)
    a = ap.parse_args()
    imgs = torch.from_numpy(np.load(a.images))
    noise = torch.from_numpy(np.load(a.noise))
    model = MAE(a, noise.shape[1])
    ckpt = torch.load(a.ckpt, map_location="cpu")
    assert list(ckpt.keys()) == ["model"], list(ckpt.keys())
    model.load_state_dict(ckpt["model"], strict=True)
    model.eval()
    with torch.no_grad():
        loss, pred = model(imgs, noise)
    np.save(a.loss, loss.numpy())
    np.save(a.pred, pred.numpy())


if __name__ == "__main__":
    main()

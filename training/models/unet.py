"""Small fully convolutional UNet shared by every convolutional family.

Residual blocks with GroupNorm + SiLU, an optional sinusoidal timestep embedding injected into every
block (FiLM scale/shift), optional self-attention (off by default: on a 2-core CPU it costs more than
it brings at 64×64). Any H×W works: the input is padded (reflect) to a multiple of 2**depth and the
output cropped back, so odd tile sizes like 37×53 give 37×53 outputs.

`norm="none", activation="relu"` is the deployment-friendly block (issue #20): no normalisation, so a
pixel's output does not depend on the tile it is computed in (GroupNorm's statistics do), and the inference
graph is convolutions, ReLU and additions, which onnxruntime fuses (Conv+Relu) and int8 quantizes whole. The
residual branch's last convolution starts at zero, so every block starts as the identity and the stack
trains without normalisation (SkipInit, De & Smith 2020).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class UNetConfig:
    base_channels: int = 32
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)  # one entry per resolution: depth + 1 entries
    blocks_per_level: int = 1
    attention: bool = False  # self-attention at the lowest resolution (and in the middle block)
    dropout: float = 0.0
    norm: str = "group"  # "group" (GroupNorm) or "none" (deployment-friendly: tile-independent, conv-only graph)
    activation: str = "silu"  # "silu" or "relu" (fused into the convolution by onnxruntime, int8 included)

    def __post_init__(self):
        if self.norm not in NORMS:
            raise ValueError(f"[model] norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"[model] activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")

    @property
    def depth(self) -> int:
        """Number of 2× downsamplings: inputs are padded to a multiple of 2**depth."""
        return len(self.channel_mult) - 1


NORMS = ("group", "none")
ACTIVATIONS = ("silu", "relu")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.GroupNorm(_groups(channels), channels) if kind == "group" else nn.Identity()


def _activation(kind: str) -> nn.Module:
    return nn.SiLU() if kind == "silu" else nn.ReLU()


def _groups(channels: int) -> int:
    # 8 groups when the channel count allows it; GroupNorm needs groups to divide channels.
    return math.gcd(8, channels)


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """Sinusoidal embedding of float timesteps t [B] -> [B, dim] (as in DDPM / diffusers' Timesteps)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    return F.pad(emb, (0, dim % 2))


class ResBlock(nn.Module):
    def __init__(
        self, cin: int, cout: int, emb_dim: int | None, dropout: float = 0.0, norm: str = "group", activation: str = "silu"
    ):
        super().__init__()
        self.norm1 = _norm(norm, cin)
        self.act = _activation(activation)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.norm2 = _norm(norm, cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        # Zero-init the last conv: each block starts as identity, which keeps deep stacks stable early on.
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.emb = nn.Linear(emb_dim, 2 * cout) if emb_dim else None
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor | None) -> torch.Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.norm2(h)
        if self.emb is not None and emb is not None:
            scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
            h = h * (1 + scale) + shift
        h = self.conv2(self.dropout(self.act(h)))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, channels: int, heads: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(_groups(channels), channels)
        self.attn = nn.MultiheadAttention(channels, heads if channels % heads == 0 else 1, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        seq = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(seq, seq, seq, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, h, w)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad the last two dims up to a multiple (reflect where the input is large enough, else replicate)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x, (h, w)
    mode = "reflect" if ph < h and pw < w else "replicate"
    return F.pad(x, (0, pw, 0, ph), mode=mode), (h, w)


class UNet(nn.Module):
    """UNet(in_channels -> out_channels). forward(x, t=None): x [B, C, H, W], t float [B] or None."""

    def __init__(self, in_channels: int, out_channels: int, config: UNetConfig | None = None, time_embedding: bool = False):
        super().__init__()
        self.config = cfg = config or UNetConfig()
        base = cfg.base_channels
        self.emb_dim = 4 * base if time_embedding else None
        if time_embedding:
            self.time_mlp = nn.Sequential(nn.Linear(base, self.emb_dim), nn.SiLU(), nn.Linear(self.emb_dim, self.emb_dim))
        self.stem = nn.Conv2d(in_channels, base, 3, padding=1)

        chans = [base * m for m in cfg.channel_mult]
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skips = [base]
        ch = base
        for level, cout in enumerate(chans):
            blocks = nn.ModuleList()
            for _ in range(cfg.blocks_per_level):
                blocks.append(ResBlock(ch, cout, self.emb_dim, cfg.dropout, cfg.norm, cfg.activation))
                ch = cout
                skips.append(ch)
            self.down_blocks.append(blocks)
            if level < cfg.depth:
                self.downsamples.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)

        self.mid1 = ResBlock(ch, ch, self.emb_dim, cfg.dropout, cfg.norm, cfg.activation)
        self.mid_attn = SelfAttention(ch) if cfg.attention else nn.Identity()
        self.mid2 = ResBlock(ch, ch, self.emb_dim, cfg.dropout, cfg.norm, cfg.activation)

        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(chans))):
            blocks = nn.ModuleList()
            for _ in range(cfg.blocks_per_level + 1):
                blocks.append(ResBlock(ch + skips.pop(), chans[level], self.emb_dim, cfg.dropout, cfg.norm, cfg.activation))
                ch = chans[level]
            self.up_blocks.append(blocks)
            if level > 0:
                self.upsamples.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.low_attn = SelfAttention(chans[-1]) if cfg.attention else nn.Identity()
        self.out_norm = _norm(cfg.norm, ch)
        self.out_act = _activation(cfg.activation)
        self.out_conv = nn.Conv2d(ch, out_channels, 3, padding=1)

    def forward(self, x: torch.Tensor, t: torch.Tensor | None = None) -> torch.Tensor:
        x, (h, w) = pad_to_multiple(x, 2**self.config.depth)
        emb = None
        if self.emb_dim is not None:
            if t is None:
                raise ValueError("this UNet was built with a timestep embedding: pass t")
            t = t.to(x.device).float().expand(x.shape[0]) if t.dim() == 0 else t.to(x.device).float()
            emb = self.time_mlp(timestep_embedding(t, self.config.base_channels))

        hs = [self.stem(x)]
        cur = hs[-1]
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                cur = block(cur, emb)
                hs.append(cur)
            if level < self.config.depth:
                cur = self.downsamples[level](cur)
                hs.append(cur)

        cur = self.mid2(self.mid_attn(self.mid1(cur, emb)), emb)

        for i, blocks in enumerate(self.up_blocks):
            for block in blocks:
                cur = block(torch.cat([cur, hs.pop()], dim=1), emb)
            if i == 0:
                cur = self.low_attn(cur)
            if i < len(self.upsamples):
                cur = self.upsamples[i](F.interpolate(cur, scale_factor=2.0, mode="nearest"))
        out = self.out_conv(self.out_act(self.out_norm(cur)))
        return out[..., :h, :w]

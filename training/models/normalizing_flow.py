"""`normalizing_flow` family: conditional Glow (Kingma & Dhariwal 2018) in the style of SRFlow (Lugmayr et
al. 2020): exact log-likelihood of the VIIRS target given the condition, and one-pass sampling.

Architecture, for `levels` levels: squeeze (2×2 space-to-depth) -> `steps_per_level` x [ActNorm ->
invertible 1×1 conv (LU) -> conditional affine injector -> conditional affine coupling] -> split half of
the channels off with a learned conditional Gaussian prior. The top z has a conditional prior too. Every
conditional layer sees features of a small CNN encoder of the 3-channel condition at its own resolution.

Tile sizes: H and W must be multiples of 2**levels (8 by default) for the flow itself. `loss` and `sample`
pad other sizes (reflect) up to the next multiple and crop samples back; for padded tiles the likelihood is
that of the padded tile. The likelihood is joint over the tile, so invalid target pixels cannot be masked
out: they are set to -1 (no light) and each tile's NLL is weighted by its valid fraction.

With target "residual_log" the flow models x_0 = the residual relative to the reference (base.to_residual; it
spans ±2.2 in model space, where the reference is absent x_0 is the target itself), invalid pixels are set to 0
("nothing changed") where a reference exists and -1 elsewhere, and `sample()` adds the reference back; `nll`,
`encode`, `decode` and the ONNX export stay in x_0 space (the engine applies nlf_target). The condition encoder
takes condition_version's channel count (3, or 4 for v2).

Data are continuous, so the NLL is of the dequantised target (uniform noise of one bin, Δ = 2/256, over
the model range [-1, 1]); bits/dim = (NLL - D log Δ) / (D log 2), the Glow convention for 8-bit data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .base import ConditionConfig, ConfigError, Family
from .unet import pad_to_multiple

LOG_2PI = math.log(2 * math.pi)


@dataclass
class FlowConfig(ConditionConfig):  # condition_version / target: base.ConditionConfig
    levels: int = 3
    steps_per_level: int = 6
    hidden_channels: int = 64  # coupling / injector networks
    condition_channels: int = 32  # condition encoder features per level
    bin_width: float = 2.0 / 256  # dequantisation bin in model space
    sample_temperature: float = 0.8  # validation sampling temperature

    def validate(self) -> None:
        super().validate()
        if self.levels < 1 or self.steps_per_level < 1:
            raise ConfigError("[model] levels and steps_per_level must be >= 1")
        if not 0 < self.bin_width < 1:
            raise ConfigError("[model] bin_width must be in (0, 1)")


def squeeze(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, c, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 2, 4)
    return x.reshape(b, c * 4, h // 2, w // 2)


def unsqueeze(x: torch.Tensor) -> torch.Tensor:
    b, c, h, w = x.shape
    x = x.view(b, c // 4, 2, 2, h, w).permute(0, 1, 4, 2, 5, 3)
    return x.reshape(b, c // 4, h * 2, w * 2)


def gaussian_logp(z: torch.Tensor, mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
    """Sum of log N(z; mean, exp(log_std)^2) over all but the batch dim."""
    return (-0.5 * (LOG_2PI + 2 * log_std + ((z - mean) * torch.exp(-log_std)) ** 2)).flatten(1).sum(1)


def zero_conv(cin: int, cout: int) -> nn.Conv2d:
    # Zero-initialised output convs make every conditional layer start as the identity / standard prior.
    conv = nn.Conv2d(cin, cout, 3, padding=1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


class ActNorm(nn.Module):
    """Per-channel affine, initialised from the first batch so activations start at zero mean, unit variance."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.training and not bool(self.initialized):
            with torch.no_grad():
                mean = x.mean(dim=(0, 2, 3), keepdim=True)
                std = x.std(dim=(0, 2, 3), keepdim=True)
                self.bias.copy_(-mean)
                self.log_scale.copy_(-torch.log(std + 1e-6))
                self.initialized.fill_(True)
        logdet = self.log_scale.sum() * x.shape[2] * x.shape[3]
        return (x + self.bias) * torch.exp(self.log_scale), logdet.expand(x.shape[0])

    def reverse(self, y: torch.Tensor) -> torch.Tensor:
        return y * torch.exp(-self.log_scale) - self.bias


class InvConv1x1(nn.Module):
    """Invertible 1×1 convolution, LU-parametrised (Glow): log|det W| = sum(log|s|), cheap and stable."""

    def __init__(self, channels: int):
        super().__init__()
        w = torch.linalg.qr(torch.randn(channels, channels))[0]
        p, lower, upper = torch.linalg.lu(w)
        s = torch.diagonal(upper)
        self.register_buffer("p", p)
        self.register_buffer("sign_s", torch.sign(s))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)))

    def weight(self) -> torch.Tensor:
        eye = torch.eye(self.p.shape[0], device=self.p.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.p @ lower @ upper

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.weight()
        logdet = self.log_s.sum() * x.shape[2] * x.shape[3]
        return F.conv2d(x, w[:, :, None, None]), logdet.expand(x.shape[0])

    def reverse(self, y: torch.Tensor) -> torch.Tensor:
        w_inv = torch.linalg.inv(self.weight().double()).float()
        return F.conv2d(y, w_inv[:, :, None, None])


def _scale_shift(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    shift, raw = h.chunk(2, dim=1)
    # sigmoid(raw + 2) (Glow): scales in (0, 1), ≈0.88 at init; bounded scales keep training stable.
    return shift, torch.sigmoid(raw + 2.0)


class AffineInjector(nn.Module):
    """SRFlow's conditional affine injector: y = (x + shift(c)) * scale(c), all channels."""

    def __init__(self, channels: int, cond_channels: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(cond_channels, hidden, 3, padding=1), nn.ReLU(), zero_conv(hidden, 2 * channels))

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shift, scale = _scale_shift(self.net(cond))
        return (x + shift) * scale, torch.log(scale).flatten(1).sum(1)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        shift, scale = _scale_shift(self.net(cond))
        return y / scale - shift


class AffineCoupling(nn.Module):
    """Glow coupling: the second half of the channels is scaled/shifted by a net of (first half, condition)."""

    def __init__(self, channels: int, cond_channels: int, hidden: int):
        super().__init__()
        self.half = channels // 2
        self.net = nn.Sequential(
            nn.Conv2d(self.half + cond_channels, hidden, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(hidden, hidden, 1),
            nn.ReLU(),
            zero_conv(hidden, 2 * (channels - self.half)),
        )

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        xa, xb = x[:, : self.half], x[:, self.half :]
        shift, scale = _scale_shift(self.net(torch.cat([xa, cond], dim=1)))
        return torch.cat([xa, (xb + shift) * scale], dim=1), torch.log(scale).flatten(1).sum(1)

    def reverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ya, yb = y[:, : self.half], y[:, self.half :]
        shift, scale = _scale_shift(self.net(torch.cat([ya, cond], dim=1)))
        return torch.cat([ya, yb / scale - shift], dim=1)


class FlowStep(nn.Module):
    def __init__(self, channels: int, cond_channels: int, hidden: int):
        super().__init__()
        self.actnorm = ActNorm(channels)
        self.invconv = InvConv1x1(channels)
        self.injector = AffineInjector(channels, cond_channels, hidden)
        self.coupling = AffineCoupling(channels, cond_channels, hidden)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x, ld1 = self.actnorm(x)
        x, ld2 = self.invconv(x)
        x, ld3 = self.injector(x, cond)
        x, ld4 = self.coupling(x, cond)
        return x, ld1 + ld2 + ld3 + ld4

    def reverse(self, y: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        y = self.coupling.reverse(y, cond)
        y = self.injector.reverse(y, cond)
        y = self.invconv.reverse(y)
        return self.actnorm.reverse(y)


class ConditionEncoder(nn.Module):
    """CNN features of the condition at the resolution of each level (H / 2**(level + 1))."""

    def __init__(self, levels: int, channels: int, in_channels: int = 3):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, channels, 3, padding=1), nn.SiLU(), nn.Conv2d(channels, channels, 3, padding=1), nn.SiLU()
        )
        self.down = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(channels, channels, 3, stride=2, padding=1),
                nn.SiLU(),
                nn.Conv2d(channels, channels, 3, padding=1),
                nn.SiLU(),
            )
            for _ in range(levels)
        )

    def forward(self, condition: torch.Tensor) -> list[torch.Tensor]:
        h = self.stem(condition)
        features = []
        for down in self.down:
            h = down(h)
            features.append(h)
        return features


class ConditionalGlow(Family):
    family = "normalizing_flow"
    supports_bf16 = False  # log-determinants and inverses need fp32
    needs_data_init = True  # ActNorm: the trainer runs one batch through before training / DDP

    def __init__(self, config: FlowConfig | None = None):
        super().__init__(config or FlowConfig())
        cfg = self.config
        self.encoder = ConditionEncoder(cfg.levels, cfg.condition_channels, self.in_channels)
        self.levels = nn.ModuleList()
        self.split_priors = nn.ModuleList()
        channels = 1
        for level in range(cfg.levels):
            channels *= 4
            self.levels.append(
                nn.ModuleList(FlowStep(channels, cfg.condition_channels, cfg.hidden_channels) for _ in range(cfg.steps_per_level))
            )
            if level < cfg.levels - 1:
                keep = channels - channels // 2
                self.split_priors.append(zero_conv(keep + cfg.condition_channels, 2 * (channels // 2)))
                channels = keep
        self.top_prior = zero_conv(cfg.condition_channels, 2 * channels)

    @property
    def multiple(self) -> int:
        return 2**self.config.levels

    def encode(self, x: torch.Tensor, condition: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        """x -> (latents per level, log p(x)) per sample. H, W must be multiples of 2**levels."""
        if x.shape[-2] % self.multiple or x.shape[-1] % self.multiple:
            raise ValueError(f"flow input {tuple(x.shape[-2:])} is not a multiple of {self.multiple}")
        self.check_condition(condition)
        features = self.encoder(condition)
        logp = torch.zeros(x.shape[0], device=x.device)
        zs = []
        for level, steps in enumerate(self.levels):
            x = squeeze(x)
            for step in steps:
                x, logdet = step(x, features[level])
                logp = logp + logdet
            if level < len(self.levels) - 1:
                half = x.shape[1] // 2
                z, x = x[:, :half], x[:, half:]
                mean, log_std = self.split_priors[level](torch.cat([x, features[level]], dim=1)).chunk(2, dim=1)
                logp = logp + gaussian_logp(z, mean, log_std)
                zs.append(z)
        mean, log_std = self.top_prior(features[-1]).chunk(2, dim=1)
        zs.append(x)
        return zs, logp + gaussian_logp(x, mean, log_std)

    def decode(
        self,
        condition: torch.Tensor,
        zs: list[torch.Tensor] | None = None,
        temperature: float = 1.0,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Latents -> x (the exact inverse of `encode`); latents not given are sampled from the priors."""

        def draw(mean: torch.Tensor, log_std: torch.Tensor) -> torch.Tensor:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            return mean + temperature * torch.exp(log_std) * noise

        self.check_condition(condition)
        features = self.encoder(condition)
        mean, log_std = self.top_prior(features[-1]).chunk(2, dim=1)
        x = zs[-1] if zs is not None else draw(mean, log_std)
        for level in reversed(range(len(self.levels))):
            if level < len(self.levels) - 1:
                mean, log_std = self.split_priors[level](torch.cat([x, features[level]], dim=1)).chunk(2, dim=1)
                z = zs[level] if zs is not None else draw(mean, log_std)
                x = torch.cat([z, x], dim=1)
            for step in reversed(self.levels[level]):
                x = step.reverse(x, features[level])
            x = unsqueeze(x)
        return x

    def nll(self, target: torch.Tensor, condition: torch.Tensor, dequantize: bool = True) -> torch.Tensor:
        """Per-sample NLL in nats per dim of the (dequantised) x_0 (the target, or its residual: `loss` converts)."""
        target, _ = pad_to_multiple(target, self.multiple)
        condition, _ = pad_to_multiple(condition, self.multiple)
        if dequantize:
            target = target + (torch.rand_like(target) - 0.5) * self.config.bin_width
        _, logp = self.encode(target, condition)
        return -logp / target[0].numel()

    def loss(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        valid, condition = batch["valid"], batch["condition"]
        x0 = self.to_x0(batch["target"], condition)
        # Invalid pixels get the uninformative value: no light (-1); for residual models "nothing changed" (0)
        # where there is a reference (what the engine returns for an all-zero output), no light where there is none.
        empty = torch.full_like(x0, -1.0)
        if self.config.target == "residual_log":
            empty = torch.where(condition[:, 2:3] > 0, torch.zeros_like(x0), empty)
        elif self.config.target == "residual_traditional":
            empty = torch.zeros_like(x0)  # the traditional estimate as it is
        x0 = torch.where(valid > 0, x0, empty)
        nll = self.nll(x0.float(), condition.float())
        weight = valid.flatten(1).mean(1)
        loss = (nll * weight).sum() / weight.sum().clamp_min(1e-6)
        bits = (loss.detach() - math.log(self.config.bin_width)) / math.log(2)
        return loss, {"loss": float(loss.detach()), "bits_per_dim": float(bits)}

    @torch.no_grad()
    def sample(
        self, condition: torch.Tensor, generator: torch.Generator | None = None, temperature: float | None = None, **_: Any
    ) -> torch.Tensor:
        padded, (h, w) = pad_to_multiple(condition, self.multiple)
        temperature = self.config.sample_temperature if temperature is None else temperature
        x0 = self.decode(padded, temperature=temperature, generator=generator)[..., :h, :w]
        return self.to_radiance(x0, condition)

    @torch.no_grad()
    def data_init(self, batch: dict[str, torch.Tensor]) -> None:
        """Initialise the ActNorm layers from one batch (before EMA copies and DDP broadcasts)."""
        was_training = self.training
        self.train()
        target = batch["target"]
        # The dequantisation noise must not advance the training RNG (resumed runs replay it exactly).
        with torch.random.fork_rng(devices=[target.device.index or 0] if target.is_cuda else []):
            self.loss(batch)
        self.train(was_training)

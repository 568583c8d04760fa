"""The ONNX graphs the engine runs: one torch wrapper per family with the engine's inputs and outputs, their
example inputs, the export itself and the torch/onnxruntime parity check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..models.normalizing_flow import InvConv1x1

OPSET = 17
PARITY_TIMESTEPS = (999.0, 750.0, 500.0, 250.0, 20.0)


class RegressionExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, condition):
        return self.model(condition)


class DiffusionExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, sample, timestep, condition):
        return self.model(sample, timestep, condition)


class FlowMatchingExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.scale = float(model.config.num_train_timesteps)

    def forward(self, sample, timestep, condition):
        return self.model(sample, timestep / self.scale, condition)


class NormalizingFlowExport(nn.Module):
    """decode() with its prior draws replaced by slices of one latent image: latent dims equal pixel count
    (squeeze and split only rearrange), so a [B,1,H,W] standard-normal input carries all of them."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        for module in model.modules():  # ONNX has no matrix inverse: bake W⁻¹ into a constant
            if isinstance(module, InvConv1x1):
                w_inv = torch.linalg.inv(module.weight().double()).float().detach()
                module.reverse = lambda y, w=w_inv: F.conv2d(y, w[:, :, None, None])

    def forward(self, condition, latent):
        m = self.model
        features = m.encoder(condition)
        b, h, w = latent.shape[0], latent.shape[2], latent.shape[3]
        flat = latent.reshape(b, -1)
        offset = 0

        def take(mean, log_std):
            nonlocal offset
            c, hh, ww = mean.shape[1], mean.shape[2], mean.shape[3]
            n = c * hh * ww
            piece = flat[:, offset : offset + n].reshape(b, c, hh, ww)
            offset += n
            return mean + torch.exp(log_std) * piece

        mean, log_std = m.top_prior(features[-1]).chunk(2, dim=1)
        x = take(mean, log_std)
        for level in reversed(range(len(m.levels))):
            if level < len(m.levels) - 1:
                mean, log_std = m.split_priors[level](torch.cat([x, features[level]], dim=1)).chunk(2, dim=1)
                x = torch.cat([take(mean, log_std), x], dim=1)
            for step in reversed(m.levels[level]):
                x = step.reverse(x, features[level])
            x = x.reshape(b, x.shape[1] // 4, 2, 2, x.shape[2], x.shape[3]).permute(0, 1, 4, 2, 5, 3)
            x = x.reshape(b, x.shape[1], x.shape[2] * 2, x.shape[4] * 2)
        return x[:, :, :h, :w]


WRAPPERS = {
    "unet": RegressionExport,
    "diffusion": DiffusionExport,
    "flow_matching": FlowMatchingExport,
    "normalizing_flow": NormalizingFlowExport,
}
INPUTS = {
    "unet": ["condition"],
    "diffusion": ["sample", "timestep", "condition"],
    "flow_matching": ["sample", "timestep", "condition"],
    "normalizing_flow": ["condition", "latent"],
}


def example_inputs(
    family: str, batch: int, size: int, timestep: float = 500.0, seed: int = 0, channels: int = 3
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    cond = rng.uniform(-1, 1, (batch, channels, size, size)).astype(np.float32)
    cond[:, 2] = 1.0
    x = rng.standard_normal((batch, 1, size, size)).astype(np.float32)
    if family == "unet":
        return {"condition": cond}
    if family == "normalizing_flow":
        return {"condition": cond, "latent": 0.8 * x}
    return {"sample": x, "timestep": np.full((batch,), timestep, np.float32), "condition": cond}


def condition_channels(model) -> int:
    """Condition channels the model takes: 3 (condition v1) or 4 (v2)."""
    return int(getattr(model, "in_channels", 3))


def multiple_of(model) -> int:
    if getattr(model, "multiple", None):
        return int(model.multiple)
    return 2 ** (len(model.config.channel_mult) - 1) if hasattr(model.config, "channel_mult") else 8


def export_onnx(model, family: str, path: Path, tile: int) -> None:
    wrapper = WRAPPERS[family](model).eval()
    inputs = example_inputs(family, 2, tile, channels=condition_channels(model))
    dynamic = {name: {0: "batch", 2: "height", 3: "width"} for name in INPUTS[family] if name != "timestep"}
    if "timestep" in inputs:
        dynamic["timestep"] = {0: "batch"}
    dynamic["output"] = {0: "batch", 2: "height", 3: "width"}
    with torch.no_grad():
        torch.onnx.export(
            wrapper,
            tuple(torch.from_numpy(inputs[n]) for n in INPUTS[family]),
            str(path),
            input_names=INPUTS[family],
            output_names=["output"],
            dynamic_axes=dynamic,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )


def torch_reference(model, family: str, inputs: dict[str, np.ndarray]) -> np.ndarray:
    wrapper = WRAPPERS[family](model).eval()
    with torch.no_grad():
        return wrapper(*(torch.from_numpy(inputs[n]) for n in INPUTS[family])).numpy()


def ort_run(path: Path, inputs: dict[str, np.ndarray], provider: str = "CPUExecutionProvider") -> np.ndarray:
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=[provider])
    return session.run(None, {k: v for k, v in inputs.items()})[0]


def parity(model, family: str, path: Path, tile: int) -> dict[str, float]:
    """Max |torch − onnxruntime| at several timesteps (and sizes: dynamic shapes must work)."""
    errors = {}
    for t in PARITY_TIMESTEPS if family in ("diffusion", "flow_matching") else (500.0,):
        for size in (tile, tile + multiple_of(model)):
            inputs = example_inputs(family, 2, size, t, seed=int(t), channels=condition_channels(model))
            errors[f"t{int(t)}_s{size}"] = float(np.abs(torch_reference(model, family, inputs) - ort_run(path, inputs)).max())
    return errors

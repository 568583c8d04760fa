"""DMSP consistency (issue #19): a last pass that makes any method's map agree with the DMSP it was made from.

The project has the DMSP's forward model: a fused map re-simulated to DMSP (footprint and halo blur, saturating
response, the satellite-year's digitising) should match the input DMSP at the DMSP's footprint. Where it does not,
the map is scaled by the local ratio of the DMSP to its re-simulation, as reference-change scales a reference:
the fused map is the reference here, a reference of the DMSP's own year (gap 0: the prior's shortest gap), so the
scene-wide part of a level difference goes mostly to the sensor and the rest, locally, to the map. Pixels where
both are saturated carry no evidence and keep their value; the map's detail is kept, only its local level moves.
It runs after the method, windowed like reference-change, from a hidden intermediate file that is removed after.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..raster.grids import inspect_raster
from ..raster.output import RasterWriter
from ..sensor.scene_gain import ChangePrior


def consistency_input_path(output: Path) -> Path:
    """Where the method writes its map before the consistency pass (hidden, next to the output)."""
    return Path(output).with_name(f".{Path(output).name}.before-consistency.tif")


def make_consistent(request, dmsp, fused_path: Path, output: Path, grid, intercal, result, report, check_cancel, mask) -> None:
    """Read the method's map from `fused_path`, write the DMSP-consistent map to `output`, remove `fused_path`."""
    from dataclasses import replace

    from ..methods.reference_change import reference_dmsp_agreement, run_reference_change

    fused = inspect_raster(str(fused_path), "fused map")
    prior = ChangePrior.load().at_gap(0.0)
    agreement = reference_dmsp_agreement(dmsp, fused, grid, intercal)
    pass_tags: dict[str, str] = {}

    def writer(tags: dict[str, str]) -> RasterWriter:
        pass_tags.update(tags)
        result.tags["NLF_DMSP_CONSISTENCY"] = (
            f"the map scaled by (DNc+eps)/(DNsim+eps) of the DMSP against the map re-simulated to DMSP: scene gain "
            f"{tags.get('NLF_DMSP_SCENE_GAIN', '1')}, change weight {tags.get('NLF_CHANGE_WEIGHT', '1')}"
        )
        return RasterWriter(output, grid, result.tags, "VIIRS-like radiance (nW/cm2/sr)")

    try:
        method = run_reference_change(
            replace(request, viirs=str(fused_path)),
            dmsp,
            fused,
            grid,
            intercal,
            writer,
            lambda f, m: report(0.9 + 0.1 * f, f"DMSP consistency: {m}"),
            check_cancel,
            mask,
            agreement,
            prior,
        )
    finally:
        if os.path.exists(fused_path):
            os.remove(fused_path)
    result.notes.append(
        f"DMSP consistency: the map re-simulated to DMSP was matched to the DMSP locally (the DMSP first scaled by "
        f"{method.dmsp_gain:.3f}, the prior's share of the scene-wide difference taken as its sensor)"
    )

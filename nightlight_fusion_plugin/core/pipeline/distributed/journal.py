"""The journal of a block run: a partial GeoTIFF (and one for the uncertainty layer) next to the output, and a
sidecar JSON naming the job and its finished blocks, so a run stopped by Ctrl-C, a crash or a dying cluster
continues where it stopped (`--resume`), and only the complete raster (overviews, tags) is renamed into place.

The JSON keeps the job's description (inputs with their sizes and times, grid, method, model sha256, scene-wide
values, block plan): `--resume` with a journal of another command is refused naming what differs; a run without
`--resume` does not discard an interrupted run's blocks unless `--overwrite` says so."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling

from ...errors import InputError, OutputError
from ...raster.grids import Grid, RasterInfo
from ...raster.output import GTIFF_OPTIONS, overview_factors
from .blocks import Block, BlockSpec

JOURNAL_VERSION = 2
# FuseRequest fields blocks do not depend on (the precision's choice is in the model's sha256)
NOT_KEYS = ("output", "overwrite", "cache_models", "threads", "device", "precision_cache")


def describe_job(request, spec: BlockSpec, block_rows: int, block_cols: int) -> dict[str, object]:
    """What makes two runs' blocks interchangeable, flat (one key per thing that can differ)."""

    def stamp(info: RasterInfo | None) -> object:
        if info is None:
            return None
        st = os.stat(info.path) if os.path.exists(info.path) else None
        return [os.path.abspath(info.path), st.st_size if st else None, int(st.st_mtime) if st else None]

    body: dict[str, object] = {f"request.{k}": v for k, v in dataclasses.asdict(request).items() if k not in NOT_KEYS}
    body["request.uncertainty"] = bool(request.uncertainty)
    body.update(
        {
            "dmsp file": stamp(spec.dmsp),
            "viirs file": stamp(spec.viirs),
            "grid": [spec.grid.crs.to_wkt(), list(spec.grid.transform)[:6], spec.grid.width, spec.grid.height],
            "method": spec.kind,
            "model sha256": spec.model.sha256 if spec.model else None,
            "sampling plan": repr(spec.plan),
            "ensemble": spec.ensemble,
            "calibration curve": repr(spec.curve),
            "scene gain": spec.dmsp_gain,
            "change weight": spec.change_weight,
            "traditional estimate": repr(spec.construct),
            "gap years": spec.gap_years,
            "tiles": [spec.tile, spec.overlap],
            "blocks": [block_rows, block_cols],
        }
    )
    return json.loads(json.dumps(body, default=str))  # as it reads back from the JSON


def _hidden(path: Path, suffix: str) -> Path:
    return path.with_name(f".{path.name}.{suffix}")


class BlockJournal:
    """The partial GeoTIFF(s) and the sidecar JSON of finished blocks (stable names, so a rerun finds them)."""

    def __init__(self, output: Path, job: dict, uncertainty: Path | None = None):
        self.output, self.job, self.uncertainty = output, job, uncertainty
        self.fingerprint = hashlib.sha256(json.dumps(job, sort_keys=True).encode()).hexdigest()
        self.partial = _hidden(output, "partial.tif")
        self.spread = _hidden(uncertainty, "partial.tif") if uncertainty else None
        self.path = _hidden(output, "partial.json")
        self.done: dict[str, dict[str, int]] = {}  # block key -> its pixel counts

    @property
    def partials(self) -> list[Path]:
        return [self.partial] + ([self.spread] if self.spread else [])

    def exists(self) -> bool:
        return self.path.is_file()

    def load(self) -> bool:
        """The finished blocks of an earlier run of this very job (False: there is no journal to resume). A journal
        of another job, or of an older format, is refused (InputError) naming the difference."""
        if not self.exists():
            return False
        try:
            data = json.loads(self.path.read_text())
        except (OSError, ValueError) as exc:
            raise InputError(f"The journal {self.path} cannot be read ({exc}); start afresh with --overwrite.") from exc
        if data.get("version") != JOURNAL_VERSION:
            raise InputError(
                f"The journal {self.path.name} next to the output is of another Nightlight Fusion version (format "
                f"{data.get('version')}, this one writes {JOURNAL_VERSION}): its blocks cannot be resumed; start afresh "
                "without --resume and with --overwrite."
            )
        if data.get("fingerprint") != self.fingerprint:
            raise InputError(
                f"The journal {self.path.name} next to the output is of another command: "
                f"{differences(data.get('job', {}), self.job)}. "
                "Rerun the command that started it with --resume, or start this one afresh without --resume and with "
                "--overwrite (its blocks are then discarded)."
            )
        missing = [p.name for p in self.partials if not p.is_file()]
        if missing:
            raise InputError(
                f"The journal {self.path.name} names blocks, but {', '.join(missing)} is gone; start afresh with --overwrite."
            )
        self.done = {str(k): dict(v) for k, v in data.get("blocks", {}).items()}
        return True

    def start(self, grid: Grid) -> None:
        """A fresh journal: empty partial rasters and a journal with no block."""
        self.remove()
        shape = dict(crs=grid.crs, transform=grid.transform, width=grid.width, height=grid.height)
        for path in self.partials:
            with rasterio.open(path, "w", **shape, **GTIFF_OPTIONS):
                pass
        self.done = {}
        self.save()

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        body = {"version": JOURNAL_VERSION, "fingerprint": self.fingerprint, "job": self.job, "blocks": self.done}
        tmp.write_text(json.dumps(body))
        os.replace(tmp, self.path)  # never a half-written journal

    def record(self, block: Block, values: np.ndarray, counts: dict[str, int]) -> None:
        """Write a finished block ([channels, rows, cols]) into the partial(s), then name it in the journal."""
        # open-write-close per block: the GeoTIFF's tile index is on disk before the journal names the block,
        # so a killed client never journals a block the file does not hold
        for channel, path in enumerate(self.partials):
            with rasterio.open(path, "r+") as dst:
                dst.write(values[channel].astype(np.float32), 1, window=block.window)
        self.done[block.key] = dict(counts)
        self.save()

    def counts(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for counts in self.done.values():
            for k, v in counts.items():
                total[k] = total.get(k, 0) + int(v)
        return total

    def finish(self, grid: Grid, tags: dict[str, str], descriptions: list[str]) -> None:
        """Overviews, tags and band description of each partial, then the renames that make the outputs appear."""
        targets = [self.output] + ([self.uncertainty] if self.uncertainty else [])
        for path, description in zip(self.partials, descriptions):
            with rasterio.open(path, "r+") as dst:
                dst.build_overviews(overview_factors(grid.width, grid.height), Resampling.average)
                dst.update_tags(ns="rio_overview", resampling="average")
                dst.update_tags(**tags)
                dst.set_band_description(1, description)
                dst.set_band_unit(1, "nW/cm2/sr")
        for path, target in zip(self.partials, targets):
            os.replace(path, target)
        self.path.unlink()

    def remove(self) -> None:
        for p in (self.path, *self.partials):
            if p.exists():
                p.unlink()


def differences(journal: dict, now: dict, limit: int = 4) -> str:
    """'request.model: "a" in the journal, "b" now; …' for the keys whose values differ, the request's first."""

    def short(value: object) -> str:
        text = json.dumps(value, default=str)
        return text if len(text) <= 60 else text[:57] + "…"

    keys = [
        k
        for k in sorted(set(journal) | set(now), key=lambda k: (not k.startswith("request."), k))
        if journal.get(k) != now.get(k)
    ]
    parts = [f"{k}: {short(journal.get(k))} in the journal, {short(now.get(k))} now" for k in keys[:limit]]
    more = f"; and {len(keys) - limit} more" if len(keys) > limit else ""
    return "; ".join(parts) + more if parts else "its fingerprint differs"


def refuse_stale(journal: BlockJournal, overwrite: bool) -> None:
    """Without --resume: an interrupted run's journal is discarded only with --overwrite."""
    if journal.exists() and not overwrite:
        raise OutputError(
            f"An interrupted run's blocks are kept next to the output ({journal.path.name}): add --resume to continue "
            "it, or --overwrite to discard them and start afresh."
        )

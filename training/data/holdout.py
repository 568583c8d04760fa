"""Regions never trained on (training.real_sources, where they live: below both training.data and
training.simulate); kept here under their old name."""

from __future__ import annotations

from ..real_sources import REAL_TEMPORAL_HOLDOUT, overlaps_holdout

__all__ = ["REAL_TEMPORAL_HOLDOUT", "overlaps_holdout"]

"""Synthetic night-light scenes on the 15″ grid, and how they change from one year to another.

A scene is planned once (`plan_scene`) and rendered for any year (`render`): the DMSP year t and the
VIIRS reference year t_ref are renderings of one plan, so they differ the way real years do: towns grow
or shrink, new settlements appear, rural areas get electrified, flares flicker, ephemeral lights (fires,
boats) come and go.

Structure, with the reasoning behind each choice:
- Settlement sizes follow a rank-size (Zipf) law, P_k = P_1·k^(-q), q ≈ 1 (Zipf's law for cities).
- Each settlement is a bright core with radial decay exp(-(d/r)^β), elongated and rotated; radius grows
  as √P (area ∝ population), peak radiance as P^0.45 (big-city cores reach 100–300 nW/cm²/sr in VIIRS,
  villages a few nW/cm²/sr); big cities get sub-centres; a smooth texture breaks the symmetry.
- Lit roads link each settlement to its nearest bigger neighbour (corridors of 0.3–2 nW/cm²/sr).
- Dim rural scatter (isolated farms) with a density that varies smoothly across the scene.
- Water (sea or lakes) is dark; settlements are never placed on it.
- Gas flares: rare, hundreds to thousands of nW/cm²/sr, often offshore, on in most but not all years.
- Ephemeral lights (fires on land, fishing boats at sea) differ every year; VIIRS composites keep them,
  DMSP stable lights remove them, so they are returned separately.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nightlight_fusion_plugin.core.sensor.sensors import gaussian_blur


@dataclass
class Settlement:
    row: float
    col: float
    population: float  # in the plan's base year
    growth: float  # per year, log-rate (negative: decline)
    born: int  # first year with lights
    elongation: float
    angle: float
    beta: float
    brightness: float  # lognormal factor on the peak radiance


@dataclass
class ScenePlan:
    size: int
    base_year: int
    seed: int
    latitude: float
    intensity: float  # national lighting level (rich/poor, lighting policy)
    intensity_trend: float  # per year, log-rate (electrification, LED switch, crises)
    rural_trend: float  # per year, log-rate of rural electrification
    water: np.ndarray = field(repr=False)
    unlit: np.ndarray = field(repr=False)  # mountains, forest, farmland: no diffuse light
    texture: np.ndarray = field(repr=False)
    rural_density: np.ndarray = field(repr=False)
    settlements: list[Settlement] = field(default_factory=list, repr=False)
    roads: list[tuple[int, int, float]] = field(default_factory=list, repr=False)  # (i, j, radiance)
    flares: list[tuple[int, int, float, float]] = field(default_factory=list, repr=False)  # row, col, nW, p(on)


def smooth_noise(rng: np.random.Generator, size: int, scale_px: float) -> np.ndarray:
    """Zero-mean, unit-variance random field with features of about scale_px pixels."""
    field_ = gaussian_blur(rng.normal(size=(size, size)), (scale_px, scale_px))
    return ((field_ - field_.mean()) / (field_.std() + 1e-9)).astype(np.float32)


def plan_scene(seed: int, size: int, base_year: int, latitude: float | None = None) -> ScenePlan:
    rng = np.random.default_rng(seed)
    latitude = float(rng.uniform(-40, 60)) if latitude is None else latitude
    water = np.zeros((size, size), bool)
    kind = rng.random()
    if kind < 0.35:  # a coast
        water = _coast(rng, size)
    elif kind < 0.5:  # lakes
        lakes = smooth_noise(rng, size, size / 10)
        water = lakes > np.quantile(lakes, 1 - rng.uniform(0.03, 0.15))
    urbanisation = rng.beta(1.2, 2.5)
    plan = ScenePlan(
        size=size,
        base_year=base_year,
        seed=seed,
        latitude=latitude,
        intensity=float(rng.lognormal(0.0, 0.45)),
        intensity_trend=float(rng.normal(0.01, 0.025)),
        rural_trend=float(rng.normal(0.03, 0.03)),
        water=water,
        texture=smooth_noise(rng, size, 1.2),
        rural_density=np.exp(smooth_noise(rng, size, size / 8) - 1.0),
        unlit=smooth_noise(rng, size, size / 14) > rng.uniform(0.3, 1.5),
    )
    area_scale = (size / 128.0) ** 2
    count = max(1, rng.poisson((3 + 40 * urbanisation) * area_scale))
    largest = 10 ** rng.uniform(3.5, 6.2) * (0.3 + urbanisation)
    q = rng.uniform(0.8, 1.2)
    land = np.argwhere(~water)
    if land.size == 0:
        return plan
    for rank in range(1, count + 1):
        row, col = land[rng.integers(len(land))] + rng.uniform(0, 1, 2)
        born = base_year - 100 if rng.random() > 0.15 else int(rng.integers(base_year - 20, base_year + 25))
        plan.settlements.append(
            Settlement(
                row=float(row),
                col=float(col),
                population=float(largest * rank**-q),
                growth=float(rng.normal(0.015, 0.025)),
                born=born,
                elongation=float(rng.uniform(1.0, 2.0)),
                angle=float(rng.uniform(0, np.pi)),
                beta=float(rng.uniform(0.8, 1.5)),
                brightness=float(rng.lognormal(0.0, 0.3)),
            )
        )
    for i, town in enumerate(plan.settlements[1:], start=1):  # roads to the two nearest bigger towns
        dists = np.array([np.hypot(t.row - town.row, t.col - town.col) for t in plan.settlements[:i]])
        for j in np.argsort(dists)[:2]:
            if dists[j] < size * 0.6:
                plan.roads.append((i, int(j), float(rng.uniform(0.3, 2.0))))
    for _ in range(rng.poisson(0.4 * area_scale)):
        row, col = rng.integers(0, size, 2)
        plan.flares.append((int(row), int(col), float(10 ** rng.uniform(2.0, 3.3)), float(rng.uniform(0.6, 0.95))))
    return plan


def _coast(rng: np.random.Generator, size: int) -> np.ndarray:
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    offset = rng.uniform(0.55, 0.9) * size
    signed = (cols - size / 2) * np.cos(angle) + (rows - size / 2) * np.sin(angle) + size / 2
    return signed + 0.08 * size * smooth_noise(rng, size, size / 12) > offset


def _segment_distance(rows, cols, a: Settlement, b: Settlement) -> np.ndarray:
    d = np.array([b.row - a.row, b.col - a.col])
    t = np.clip(((rows - a.row) * d[0] + (cols - a.col) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(rows - (a.row + t * d[0]), cols - (a.col + t * d[1]))


def town_radius(population: float) -> float:
    """Core radius in 15″ pixels (≈0.46 km): ~3 km for 100 000 people, ~10 km for a million."""
    return 1.0 * np.sqrt(population / 2000.0)


def _town_light(town: Settlement, population: float, rows, cols, intensity: float) -> np.ndarray:
    radius = town_radius(population)
    peak = 2.5 * (population / 1000.0) ** 0.45 * town.brightness * intensity
    dr, dc = rows - town.row, cols - town.col
    along = dr * np.cos(town.angle) + dc * np.sin(town.angle)
    across = -dr * np.sin(town.angle) + dc * np.cos(town.angle)
    dist = np.hypot(along / np.sqrt(town.elongation), across * np.sqrt(town.elongation))
    core = np.exp(-((dist / max(radius, 0.35)) ** town.beta))
    suburbs = 0.05 * np.exp(-dist / (2.0 * max(radius, 0.35)))  # diffuse suburban glow around the core
    return peak * (core + suburbs)


def render(plan: ScenePlan, year: int) -> tuple[np.ndarray, np.ndarray]:
    """(stable, ephemeral) true radiance in nW/cm²/sr for `year`, on the plan's 15″ grid."""
    size, dt = plan.size, year - plan.base_year
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    intensity = plan.intensity * np.exp(plan.intensity_trend * dt)
    stable = np.zeros((size, size), np.float32)
    populations = [t.population * np.exp(t.growth * dt) for t in plan.settlements]
    alive = [t.born <= year for t in plan.settlements]
    for town, population, lit in zip(plan.settlements, populations, alive):
        if lit:
            # only pixels within reach of the town, for speed
            reach = int(10 * town_radius(population) * town.elongation) + 4
            r0, r1 = max(int(town.row) - reach, 0), min(int(town.row) + reach + 1, size)
            c0, c1 = max(int(town.col) - reach, 0), min(int(town.col) + reach + 1, size)
            if r1 > r0 and c1 > c0:
                stable[r0:r1, c0:c1] += _town_light(town, population, rows[r0:r1, c0:c1], cols[r0:r1, c0:c1], intensity)
    for i, j, radiance in plan.roads:
        if alive[i] and alive[j]:
            a, b = plan.settlements[i], plan.settlements[j]
            stable += radiance * intensity * np.exp(-0.5 * (_segment_distance(rows, cols, a, b) / 0.7) ** 2)
    # street-scale structure: lit streets and dark blocks, and dark unlit land between settlements
    stable *= np.exp(0.6 * plan.texture - 0.18)
    stable *= np.where(plan.unlit, 0.15, 1.0)
    rng_year = np.random.default_rng([plan.seed, year])
    rng_rural = np.random.default_rng([plan.seed, 0])  # farms stay where they are
    rural_draw = rng_rural.random((size, size))
    rural_level = rng_rural.lognormal(0.0, 0.8, (size, size)).astype(np.float32)
    density = 0.04 * plan.rural_density * np.exp(plan.rural_trend * dt)
    stable += np.where(rural_draw < density, rural_level * intensity, 0.0)
    stable[plan.water] = 0.0
    for row, col, radiance, p_on in plan.flares:  # on land or on offshore platforms
        if rng_year.random() < p_on:
            stable[row, col] += radiance
    ephemeral = np.zeros_like(stable)
    n_events = rng_year.poisson(3 * (size / 128.0) ** 2)
    for _ in range(n_events):
        row, col = rng_year.integers(0, size, 2)
        ephemeral[row, col] += rng_year.lognormal(1.5, 1.0)  # a fire or a fishing fleet
    return stable, ephemeral

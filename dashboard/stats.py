"""Hotspot significance: Getis-Ord Gi* over H3 hexagons, with a Benjamini–Hochberg correction.

Neighbours come from H3 rings (`pipeline.hexgrid.neighbours_within`); each hexagon is its own
neighbour (the "star" statistic) and weights are binary. PySAL's `esda` does the arithmetic.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from esda.getisord import G_Local
from libpysal.weights import W
from scipy.stats import norm

from pipeline.hexgrid import neighbours_within

DEFAULT_ALPHA = 0.05


class Hotness(StrEnum):
    HOT = "hot"
    COLD = "cold"
    NOT_SIGNIFICANT = "not significant"
    TOO_LITTLE_EFFORT = "too little effort"
    NOT_TESTED = "not tested"  # too few events or cameras in the view for the test to mean much


@dataclass(frozen=True)
class GiStar:
    """Gi* per hexagon, in the order given: z-scores, two-sided p-values, BH-adjusted p-values."""

    cells: tuple[str, ...]
    z: tuple[float, ...]
    p: tuple[float, ...]
    q: tuple[float, ...]

    def classes(self, alpha: float = DEFAULT_ALPHA) -> list[Hotness]:
        """Hot where z > 0 and q < alpha, cold where z < 0 and q < alpha, else not significant."""
        out = []
        for z, q in zip(self.z, self.q, strict=True):
            if not math.isnan(q) and q < alpha:
                out.append(Hotness.HOT if z > 0 else Hotness.COLD)
            else:
                out.append(Hotness.NOT_SIGNIFICANT)
        return out


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Return Benjamini–Hochberg adjusted p-values (q-values), same order; NaN stays NaN."""
    p = np.asarray(p_values, dtype=float)
    q = np.full(p.shape, np.nan)
    ok = ~np.isnan(p)
    m = int(ok.sum())
    if m == 0:
        return q.tolist()
    values = p[ok]
    order = np.argsort(values)
    ranked = values[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1].clip(max=1.0)
    out = np.empty(m)
    out[order] = adjusted
    q[ok] = out
    return q.tolist()


def gi_star(cells: Sequence[str], values: Sequence[float], k: int = 1) -> GiStar:
    """Getis-Ord Gi* of `values` (one per hexagon of `cells`), neighbours within `k` H3 rings.

    Returns z-scores, two-sided normal p-values and their BH adjustment. With fewer than three
    hexagons, or values that are all equal, there is nothing to test: z is 0 and p is 1.
    """
    cells = list(cells)
    y = np.asarray(values, dtype=float)
    n = len(cells)
    if n < 3 or float(np.nanstd(y)) == 0.0:
        ones = (1.0,) * n
        return GiStar(tuple(cells), (0.0,) * n, ones, ones)
    neighbours = neighbours_within(cells, k)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # islands: a hexagon with no other camera nearby
        weights = W(neighbours, id_order=cells, silence_warnings=True)
        local = G_Local(y, weights, transform="B", star=True, permutations=0)
    z = np.nan_to_num(np.asarray(local.Zs, dtype=float), nan=0.0)
    p = 2.0 * norm.sf(np.abs(z))
    q = benjamini_hochberg(p.tolist())
    return GiStar(tuple(cells), tuple(z.tolist()), tuple(p.tolist()), tuple(q))

"""Gi* and Benjamini–Hochberg against numbers worked out by hand, and the H3 neighbour helper."""

from __future__ import annotations

import math

import h3
import pytest

from dashboard.stats import Hotness, benjamini_hochberg, gi_star
from pipeline.hexgrid import cell_parent, grid_ring, neighbours_within

CENTRE = h3.latlng_to_cell(43.1, 100.5, 6)
RING1 = grid_ring(CENTRE, 1)
RING2 = grid_ring(CENTRE, 2)


def test_neighbours_come_from_h3_rings_and_ignore_cells_without_cameras() -> None:
    assert len(RING1) == 6 and len(RING2) == 12
    near = neighbours_within([CENTRE, RING1[0], RING2[0]], k=1)
    assert near[CENTRE] == [RING1[0]]  # RING2[0] is two steps away
    assert CENTRE in near[RING1[0]]
    assert cell_parent(CENTRE, 5) == h3.cell_to_parent(CENTRE, 5)
    assert cell_parent(CENTRE, 7) == CENTRE  # never finer than it is


def test_gi_star_matches_a_hand_computed_grid() -> None:
    # 19 hexagons: centre 12, its ring of six 6 each, the outer ring of twelve 0.
    # n = 19, sum x = 48, mean = 48/19, S = sqrt(360/19 - (48/19)^2) = 3.544728.
    # Centre: it and its six neighbours (binary weights, self included): sum w = 7,
    # sum w x = 48, z = (48 - 7 * 48/19) / (S * sqrt((19*7 - 7^2) / 18)) = 3.958973.
    # An outer-ring cell next to two ring-1 cells and two outer cells (and itself): sum w = 5,
    # sum w x = 12, z = (12 - 5 * 48/19) / (S * sqrt((19*5 - 25) / 18)) = -0.090351.
    cells = [CENTRE, *RING1, *RING2]
    values = [12.0] + [6.0] * 6 + [0.0] * 12
    result = gi_star(cells, values)
    assert result.z[0] == pytest.approx(3.958973, abs=1e-5)
    outer = [
        i for i, c in enumerate(cells[7:], start=7) if len(neighbours_within(cells, 1)[c]) == 4
    ]
    assert outer and all(result.z[i] == pytest.approx(-0.090351, abs=1e-5) for i in outer)
    # two-sided p of the centre, then BH over 19 tests
    assert result.p[0] == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(3.958973 / 2**0.5))), rel=1e-4)
    assert result.classes()[0] is Hotness.HOT
    # the order of the input does not matter
    flipped = gi_star(list(reversed(cells)), list(reversed(values)))
    assert flipped.z[-1] == pytest.approx(result.z[0])


def test_a_cold_centre_is_cold_and_flat_values_are_never_significant() -> None:
    cells = [CENTRE, *RING1, *RING2]
    result = gi_star(cells, [0.0] * 7 + [10.0] * 12)
    assert result.z[0] < 0 and result.classes()[0] is Hotness.COLD
    flat = gi_star(cells, [3.0] * 19)
    assert set(flat.classes()) == {Hotness.NOT_SIGNIFICANT}


def test_benjamini_hochberg_by_hand() -> None:
    # sorted p: 0.01, 0.03, 0.04, 0.2 (m = 4): 0.04, 0.06, 0.0533, 0.2 -> step-up minimum
    # gives 0.04, 0.0533, 0.0533, 0.2; NaN (no test) stays NaN.
    q = benjamini_hochberg([0.04, 0.01, float("nan"), 0.2, 0.03])
    assert q[1] == pytest.approx(0.04)
    assert q[0] == pytest.approx(0.16 / 3) and q[4] == pytest.approx(0.16 / 3)
    assert q[3] == pytest.approx(0.2)
    assert math.isnan(q[2])

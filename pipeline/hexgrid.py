"""H3 in one place: cells for camera locations and hexagon outlines for maps (h3 v4 names)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import h3
import pyarrow as pa

from pipeline.schema import H3_COLUMNS, H3_RESOLUTIONS


def cell_for(lat: float, lng: float, resolution: int) -> str:
    """Return the H3 cell (hex string) holding `lat`/`lng` at `resolution`."""
    return h3.latlng_to_cell(lat, lng, resolution)


def cells_for_locations(
    lat: Sequence[float], lng: Sequence[float], resolutions: Iterable[int] = H3_RESOLUTIONS
) -> dict[str, pa.Array]:
    """Return {"h3_rN": array of cells} for each resolution, one cell per location."""
    out: dict[str, pa.Array] = {}
    for res in resolutions:
        out[f"h3_r{res}"] = pa.array(
            [cell_for(a, b, res) for a, b in zip(lat, lng, strict=True)], pa.string()
        )
    return out


def add_cell_columns(table: pa.Table) -> pa.Table:
    """Return `table` (with latitude/longitude columns) with the h3_r5..h3_r9 columns set."""
    cells = cells_for_locations(
        table.column("latitude").to_pylist(), table.column("longitude").to_pylist()
    )
    for name in H3_COLUMNS:
        if name in table.column_names:
            table = table.set_column(table.column_names.index(name), name, cells[name])
        else:
            table = table.append_column(name, cells[name])
    return table


def cell_outline(cell: str) -> list[tuple[float, float]]:
    """Return the closed outline of `cell` as (lng, lat) pairs, GeoJSON order."""
    ring = [(lng, lat) for lat, lng in h3.cell_to_boundary(cell)]
    return [*ring, ring[0]]


def cells_geojson(cells: Iterable[str]) -> dict:
    """Return a GeoJSON FeatureCollection of hexagons, each feature's id its cell."""
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": c,
                "properties": {"h3": c},
                "geometry": {"type": "Polygon", "coordinates": [cell_outline(c)]},
            }
            for c in cells
        ],
    }


def grid_ring(cell: str, k: int = 1) -> list[str]:
    """Return the cells exactly `k` steps from `cell` (k = 0 gives `cell` itself)."""
    return sorted(h3.grid_ring(cell, k))


def neighbours_within(cells: Sequence[str], k: int = 1) -> dict[str, list[str]]:
    """Return, for each of `cells`, the other `cells` at most `k` H3 steps away.

    Cells not in `cells` are ignored, so a hexagon without cameras never counts as a
    neighbour. Every cell of `cells` is a key, with an empty list when it has no neighbour.
    """
    present = set(cells)
    out: dict[str, list[str]] = {}
    for cell in cells:
        near = set(h3.grid_disk(cell, k)) - {cell}
        out[cell] = sorted(near & present)
    return out


def cell_parent(cell: str, resolution: int) -> str:
    """Return the cell at the coarser `resolution` holding `cell` (itself when already there)."""
    if h3.get_resolution(cell) <= resolution:
        return cell
    return h3.cell_to_parent(cell, resolution)

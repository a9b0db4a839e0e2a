"""The hotspot table as CSV, GeoJSON and GeoPackage (EPSG:4326), and its public generalization.

The public version hides where a sensitive species lives: hexagons are merged into coarser
parents and parents watched by fewer than `min_cameras` cameras are left out.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv

from pipeline.hexgrid import cell_outline, cell_parent
from pipeline.schema import csv_cell

PUBLIC_COLUMNS = ("hexagon", "events", "cameras", "trap_nights", "events_per_100_trap_nights")


def with_provenance(summary: pa.Table, provenance: dict[str, str]) -> pa.Table:
    """`summary` with one constant column per `provenance` item (window, season, threshold,
    model, data date, simulated ...), so a file that leaves the dashboard still says which
    view it shows, whichever program opens it."""
    for name, value in provenance.items():
        summary = summary.append_column(name, pa.array([value] * summary.num_rows, pa.string()))
    return summary


def hotspots_csv(summary: pa.Table) -> bytes:
    """The table as UTF-8 CSV with a header row, columns as they are, but text cells that a
    spreadsheet would run as a formula escaped (`pipeline.schema.csv_cell`)."""
    columns = [
        pa.array([None if v is None else csv_cell(v) for v in col.to_pylist()], pa.string())
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type)
        else col
        for col in summary.columns
    ]
    out = io.BytesIO()
    pacsv.write_csv(pa.table(columns, names=summary.column_names), out)
    return out.getvalue()


def generalize_for_public(summary: pa.Table, resolution: int, min_cameras: int) -> pa.Table:
    """Merge hexagons into their parents at `resolution`; drop parents with < `min_cameras`.

    Events, cameras and trap-nights are summed (a camera sits in one hexagon only) and the
    rate recomputed; significance columns are dropped, since they describe the finer grid.
    Returns columns PUBLIC_COLUMNS, most events first.
    """
    merged: dict[str, dict[str, float]] = {}
    for row in summary.select(list(PUBLIC_COLUMNS[:4])).to_pylist():
        parent = cell_parent(row["hexagon"], resolution)
        acc = merged.setdefault(parent, {"events": 0, "cameras": 0, "trap_nights": 0})
        for key in ("events", "cameras", "trap_nights"):
            acc[key] += row[key] or 0
    rows = [
        {
            "hexagon": cell,
            "events": int(acc["events"]),
            "cameras": int(acc["cameras"]),
            "trap_nights": int(acc["trap_nights"]),
            "events_per_100_trap_nights": (
                100.0 * acc["events"] / acc["trap_nights"] if acc["trap_nights"] else None
            ),
        }
        for cell, acc in merged.items()
        if acc["cameras"] >= min_cameras
    ]
    rows.sort(key=lambda r: (-int(r["events"] or 0), str(r["hexagon"])))
    schema = pa.schema(
        [
            ("hexagon", pa.string()),
            ("events", pa.int64()),
            ("cameras", pa.int64()),
            ("trap_nights", pa.int64()),
            ("events_per_100_trap_nights", pa.float64()),
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def hotspots_geodataframe(summary: pa.Table):  # -> geopandas.GeoDataFrame
    """One polygon per hexagon (EPSG:4326) with every column of `summary` as attributes."""
    # geopandas (with pandas, shapely and pyproj) loads only when a GeoJSON or GeoPackage
    # export asks for it: a second or more that no other view of the dashboard needs.
    import geopandas as gpd
    from shapely.geometry import Polygon

    frame = summary.to_pandas()
    geometry = [Polygon(cell_outline(cell)) for cell in frame["hexagon"]]
    return gpd.GeoDataFrame(frame, geometry=geometry, crs="EPSG:4326")


def hotspots_geojson(summary: pa.Table, metadata: dict[str, str] | None = None) -> bytes:
    """The hexagons as a GeoJSON FeatureCollection (UTF-8); `metadata` becomes its top-level
    "uncia" member (a foreign member, which GeoJSON readers keep or ignore)."""
    text = hotspots_geodataframe(summary).to_json(drop_id=True)
    if not metadata:
        return text.encode("utf-8")
    collection = json.loads(text)
    collection["uncia"] = metadata
    return json.dumps(collection, ensure_ascii=False).encode("utf-8")


def hotspots_geopackage(
    summary: pa.Table, layer: str = "hotspots", description: str = ""
) -> bytes:
    """The hexagons as a GeoPackage file's bytes, one layer named `layer`, whose
    `gpkg_contents.description` is `description` (what view it shows)."""
    frame = hotspots_geodataframe(summary)
    with tempfile.TemporaryDirectory(prefix="uncia-gpkg-") as tmp:
        path = Path(tmp) / "hotspots.gpkg"
        frame.to_file(path, driver="GPKG", layer=layer)
        if description:
            with contextlib.closing(sqlite3.connect(path)) as con, con:
                con.execute(
                    "UPDATE gpkg_contents SET description = ? WHERE table_name = ?",
                    (description, layer),
                )
        return path.read_bytes()

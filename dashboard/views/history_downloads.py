"""The history downloads of the export area: the occupancy detection history and the SECR
capture history of the page's filters (window, season, threshold, verified only), made by
the same library functions as `uncia export occupancy` and `uncia export secr`
(pipeline.interop.occupancy), with the view they come from in provenance.csv.

Neither is offered in the public version: both are camera-level (a row per station; SECR traps
hold each camera's exact coordinates in metres), and the public version never holds
camera-level rows, only hexagons merged to `public_resolution` with at least
`public_min_cameras` cameras (docs/security.md).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

from dashboard.context import DashboardContext
from dashboard.data import queries
from dashboard.exports import history_zip
from dashboard.views.common import view_filters
from dashboard.views.insights import effort_rule
from pipeline.errors import ConfigError, StoreError
from pipeline.interop.occupancy import HistoryOptions, capture_history, detection_history

OCCUPANCY = "occupancy"
SECR = "secr"
PUBLIC_REFUSAL = (
    "the {name} is not offered in the public version: it has a row per camera station{coords}, "
    "and the public version holds only merged hexagons; untick Public version for the team's copy"
)


def occasion_days(value: Any) -> int:
    """The occasion length typed on the page; ConfigError unless a whole number 1-365."""
    default = HistoryOptions().occasion_days
    if value in (None, ""):
        return default
    try:
        days = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"an occasion lasts a whole number of days, not {value!r}") from None
    if days != float(value) or not 1 <= days <= 365:
        raise ConfigError(f"an occasion lasts 1-365 whole days, not {value!r}")
    return days


def build_history_export(
    ctx: DashboardContext, kind: str, public: bool, occasion: Any = None, **controls: Any
) -> tuple[bytes, str]:
    """The zip bytes and file name of the `kind` (occupancy or secr) history of the view.

    Raises ConfigError for the public version, a bad occasion length, or a view with nothing
    to export (no working camera in the window, no identified individual)."""
    name = "occupancy detection history" if kind == OCCUPANCY else "SECR capture history"
    if public:
        coords = " and, for SECR, its exact coordinates in metres" if kind == SECR else ""
        raise ConfigError(PUBLIC_REFUSAL.format(name=name, coords=coords))
    days = occasion_days(occasion)
    with ctx.store.connect() as con:
        overview = queries.survey_overview(con)
    filters = view_filters(overview, controls)
    options = HistoryOptions(
        occasion_days=days,
        threshold=filters.threshold,
        gap_days=ctx.settings.gap_days,
        outages_file=ctx.store.outages_file,
        start=filters.start,
        end=filters.end,
        months=filters.months,
        verified_only=filters.verified_only,
    )
    data_dir = ctx.store.data_dir
    try:
        if kind == OCCUPANCY:
            history = detection_history(data_dir, options)
            files = {
                "detection_history.csv": history.csv("detections"),
                "effort.csv": history.csv("effort"),
            }
        else:
            captures = capture_history(data_dir, options)
            files = {"captures.txt": captures.captures_text(), "traps.txt": captures.traps_text()}
    except StoreError as exc:  # nothing to export in this view: say so, without server paths
        raise ConfigError(str(exc).replace(str(data_dir), "this survey")) from None
    stamp = datetime.now(UTC)
    gap = ctx.settings.gap_days
    window = f"{filters.start or overview.first_day} to {filters.end or overview.last_day}"
    provenance = {
        "export": name,
        "view_window": window,
        "view_season": filters.describe_season(),
        "view_counted_from": (
            "human-verified bursts (review decisions and imported human labels)"
            if filters.verified_only
            else f"bursts at score ≥ {filters.threshold:.2f}, a person's verdicts applied"
        ),
        "threshold": f"{filters.threshold:.2f}",
        "occasion_days": str(days),
        "day1": options.day1 if kind == OCCUPANCY else "survey",
        "model": f"{overview.model_name} ({overview.backbone})",
        "data_through": str(overview.last_day or ""),
        "simulated": "yes" if overview.is_demo else "no",
        "trap_nights_rule": effort_rule(ctx),
        "same_as": f"uncia export {kind} --occasion-days {days}"
        + (" --verified-only" if filters.verified_only else f" --threshold {filters.threshold:g}")
        + f" --gap-days {gap or 0}"
        + (f" --outages {ctx.store.outages_file.name}" if ctx.store.outages_file else "")
        + (f" --start {filters.start}" if filters.start else "")
        + (f" --end {filters.end}" if filters.end else "")
        + (f" --months {','.join(map(str, filters.months))}" if len(filters.months) < 12 else ""),
        "public_version": "no",
        "exported_at": f"{stamp:%Y-%m-%d %H:%M:%S} UTC",
    }
    view_key = {**controls, "occasion": days, "kind": kind}
    digest = hashlib.sha256(repr(sorted(view_key.items())).encode()).hexdigest()[:6]
    return history_zip(files, provenance), f"uncia-{kind}-{stamp:%Y%m%d-%H%M%S}-{digest}.zip"

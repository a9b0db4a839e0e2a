"""Capture times: the camera's EXIF wall clock, corrected by its deployment's clock offset.

Frames without a usable time are kept and flagged (schema.TimeFlag), never dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pipeline.schema import TimeFlag

# A camera set up late in the evening keeps firing until it is collected that day.
END_GRACE = timedelta(days=1)
# The largest clock correction a deployments table may give (read_deployments refuses more):
# a camera clock a century off is a typo, and the sum must stay within datetime's years 1-9999.
MAX_CLOCK_OFFSET_SECONDS = 100 * 366 * 24 * 3600


def correct_capture_time(
    exif_time: datetime | None,
    exif_flag: str,
    clock_offset_seconds: int,
    deployment_start: datetime | None,
    deployment_end: datetime | None,
) -> tuple[datetime | None, TimeFlag]:
    """Return (corrected capture time, flag) for one frame.

    `exif_flag` is decode's verdict on the raw EXIF value ("ok", "missing", "unparseable"), or
    "infobar" for a time read from the camera's info bar: it stays "infobar" when in range.
    A time outside the deployment's dates is kept but flagged OUTSIDE_DEPLOYMENT: a wrong
    camera clock is common and a person should see it. A correction that would leave the
    years 1-9999 (an EXIF time of 9999-12-31 plus a minute) gives (None, UNPARSEABLE); a
    `deploymentEnd` of 9999-12-31 (a "still running" value) means no end. Never raises.
    """
    trusted = TimeFlag.INFOBAR if exif_flag == TimeFlag.INFOBAR else TimeFlag.OK
    if exif_time is None or exif_flag not in (TimeFlag.OK, TimeFlag.INFOBAR):
        flag = TimeFlag(exif_flag) if exif_flag != TimeFlag.OK else TimeFlag.MISSING
        return None, flag
    try:
        corrected = exif_time + timedelta(seconds=int(clock_offset_seconds))
    except (OverflowError, ValueError):  # past year 9999 or before year 1
        return None, TimeFlag.UNPARSEABLE
    if deployment_start is not None and corrected < deployment_start:
        return corrected, TimeFlag.OUTSIDE_DEPLOYMENT
    if deployment_end is not None and corrected - deployment_end > END_GRACE:
        return corrected, TimeFlag.OUTSIDE_DEPLOYMENT
    return corrected, trusted

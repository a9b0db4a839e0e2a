"""Capture times: the camera's EXIF wall clock, corrected by its deployment's clock offset.

Frames without a usable time are kept and flagged (schema.TimeFlag), never dropped.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from pipeline.schema import TimeFlag

# A camera set up late in the evening keeps firing until it is collected that day.
END_GRACE = timedelta(days=1)


def correct_capture_time(
    exif_time: datetime | None,
    exif_flag: str,
    clock_offset_seconds: int,
    deployment_start: datetime | None,
    deployment_end: datetime | None,
) -> tuple[datetime | None, TimeFlag]:
    """Return (corrected capture time, flag) for one frame.

    `exif_flag` is decode's verdict on the raw EXIF value ("ok", "missing", "unparseable").
    A time outside the deployment's dates is kept but flagged OUTSIDE_DEPLOYMENT: a wrong
    camera clock is common and a person should see it.
    """
    if exif_time is None or exif_flag != TimeFlag.OK:
        flag = TimeFlag(exif_flag) if exif_flag != TimeFlag.OK else TimeFlag.MISSING
        return None, flag
    corrected = exif_time + timedelta(seconds=int(clock_offset_seconds))
    if deployment_start is not None and corrected < deployment_start:
        return corrected, TimeFlag.OUTSIDE_DEPLOYMENT
    if deployment_end is not None and corrected > deployment_end + END_GRACE:
        return corrected, TimeFlag.OUTSIDE_DEPLOYMENT
    return corrected, TimeFlag.OK

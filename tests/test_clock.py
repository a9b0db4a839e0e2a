"""Capture-time correction and flags."""

from __future__ import annotations

from datetime import datetime

from pipeline.schema import TimeFlag
from pipeline.stages.clock import correct_capture_time

START, END = datetime(2024, 1, 1), datetime(2024, 6, 1)


def test_clock_offset_is_applied() -> None:
    when, flag = correct_capture_time(datetime(2024, 3, 1, 12), "ok", -3600, START, END)
    assert when == datetime(2024, 3, 1, 11) and flag is TimeFlag.OK


def test_times_outside_the_deployment_are_kept_but_flagged() -> None:
    for exif in (datetime(2099, 1, 1), datetime(2023, 12, 31)):
        when, flag = correct_capture_time(exif, "ok", 0, START, END)
        assert when == exif and flag is TimeFlag.OUTSIDE_DEPLOYMENT


def test_missing_and_unparseable_times_have_no_value() -> None:
    assert correct_capture_time(None, "missing", 0, START, END) == (None, TimeFlag.MISSING)
    assert correct_capture_time(None, "unparseable", 0, START, END) == (
        None,
        TimeFlag.UNPARSEABLE,
    )


def test_an_info_bar_time_is_corrected_and_keeps_its_own_flag() -> None:
    when, flag = correct_capture_time(datetime(2024, 3, 1, 12), "infobar", 60, START, END)
    assert when == datetime(2024, 3, 1, 12, 1) and flag is TimeFlag.INFOBAR
    # outside the deployment it is flagged like any other time
    when, flag = correct_capture_time(datetime(2099, 1, 1), "infobar", 0, START, END)
    assert flag is TimeFlag.OUTSIDE_DEPLOYMENT

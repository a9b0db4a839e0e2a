"""Component ids of the page, named once so that layouts, views, callbacks and tests agree."""

from __future__ import annotations


class Ids:
    """Component ids, named once so callbacks and tests agree."""

    VERSION = "data-version"
    REFRESH = "refresh"
    BANNER = "demo-banner"
    RUN_INFO = "run-info"
    STATUS = "status-alert"
    FILTERS = "filters"
    FILTERS_TOGGLE = "filters-toggle"
    RESOLUTION = "resolution"
    DATES = "date-range"
    SEASON = "season"
    MONTH_START = "month-start"
    MONTH_END = "month-end"
    THRESHOLD = "threshold"
    PERIOD = "period"
    MAP = "hotspot-map"
    MAP_ALERT = "map-alert"
    MAP_SUMMARY = "map-summary"
    TABLE = "hotspot-table"
    SERIES = "event-series"
    SERIES_ALERT = "series-alert"
    SELECTED = "selected-hexagon"
    DETECTIONS = "detections"
    DETECTIONS_TITLE = "detections-title"
    DETECTIONS_ALERT = "detections-alert"
    DETECTIONS_MORE = "detections-more"  # "Show all N frames" / "Show the first N"
    CLEAR = "clear-selection"


class InsightIds:
    MODE = "map-mode"
    LAYER = "layer"
    SOURCE = "source"
    YEAR_A = "year-a"
    YEAR_B = "year-b"
    DIEL = "diel"
    TIMELINE = "timeline"
    INSIGHTS_ALERT = "insights-alert"
    GALLERY = "review-gallery"
    GALLERY_TITLE = "review-title"
    GALLERY_ALERT = "review-alert"
    REVIEWER = "reviewer-name"
    REVIEWS = "reviews-version"
    REVIEWS_FOR_VIEWS = "reviews-for-views"  # REVIEWS, passed on only in the verified view
    REVIEW_BUTTON = "review-button"
    RELABEL = "relabel-choice"  # one per gallery: the label the Relabel buttons give
    GALLERY_MORE = "review-more"
    EXPORT_BUTTON = "export-button"
    PUBLIC = "export-public"
    DOWNLOAD = "export-download"
    EXPORT_ALERT = "export-alert"
    OCCASION_DAYS = "export-occasion-days"  # the histories' occasion length

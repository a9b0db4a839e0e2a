"""The hotspot dashboard: `create_app(Settings(data_dir=...))` returns a Dash app to run."""

from dashboard.app import create_app
from dashboard.settings import Settings

__all__ = ["Settings", "create_app"]

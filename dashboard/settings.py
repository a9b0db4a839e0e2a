"""The dashboard's frozen settings: which output folder to show, where to serve, which map tiles,
and the analysis defaults a team tunes (effort rules, public exports).

One precedence rule, as for `uncia run`: defaults < settings file ([serve] table of a TOML file)
< environment (UNCIA_SERVE_<SETTING>) < command line. Validation has no side effects; the tile
server is probed later, when the first map is drawn.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from pipeline.config import merge_layers
from pipeline.errors import ConfigError

# No default tile server: the page would ask a third party for tiles of the survey area,
# telling it where the cameras are. A team that accepts that names the server itself.
TILE_CHOICES = ("none",)
_HEADER = re.compile(r"[A-Za-z0-9-]{1,64}")


@dataclass(frozen=True)
class Settings:
    """Everything `create_app` needs; see docs/dashboard.md for each setting.

    `tiles` is "none" (the offline map, fetching nothing) or a raster tile URL template with
    {z}, {x} and {y}, used when that server answers.
    """

    data_dir: Path
    host: str = "127.0.0.1"
    port: int = 8050
    tiles: str = "none"
    tile_probe_timeout_s: float = 1.5
    refresh_seconds: float = 5.0
    default_resolution: int = 6
    max_detections: int = 60
    # Cards drawn at first in the frames and review galleries; "Show all" draws the rest. Each
    # card is a dozen Dash components the browser re-checks on every update: 60 frame cards
    # and 24 review cards made a hexagon click cost 2.5 CPU-s (docs/benchmarks.md).
    detections_shown: int = 12
    event_gap_minutes: float | None = None
    thumbnail_px: int = 320
    auth_file: Path | None = None  # TOML users file (docs/security.md); None: no Basic auth
    trusted_user_header: str | None = None  # e.g. X-Forwarded-User, set by a reverse proxy
    trusted_proxies: tuple[str, ...] = ("127.0.0.1", "::1")  # who may set that header
    image_roots: tuple[Path, ...] = ()  # thumbnails only from here; (): the runs' images_root
    # Camera operation comes from the deployments' start and end and the outages file. Guessing
    # gaps from silence is opt-in: at a quiet station a silent week is normal, and counting it
    # as down shrinks trap-nights and inflates rates. None (or 0): no guessing.
    allowed_hosts: tuple[str, ...] = ()  # names the page is served as, beyond host and loopback
    gap_days: int | None = None  # a camera silent for longer than this many days counts as down
    outages_file: Path | None = None  # CSV of outages; None: DIR/outages.csv when it exists
    min_trap_nights: int = 30  # hexagons with less effort show as "too little effort"
    min_gi_events: int = 10  # Gi* withheld with fewer events in the view's judged hexagons
    min_gi_cameras: int = 10  # ... or fewer cameras
    public_resolution: int = 5  # public exports merge hexagons up to this H3 resolution
    public_min_cameras: int = 3  # public exports leave out cells with fewer cameras
    max_review_bursts: int = 24  # candidate bursts in the review gallery
    review_bursts_shown: int = 12  # of those, drawn before "Show all"

    def __post_init__(self) -> None:
        # Absolute from the start: Flask resolves a relative folder against the package, not
        # the working directory the user meant.
        object.__setattr__(self, "data_dir", Path(self.data_dir).absolute())
        object.__setattr__(self, "image_roots", tuple(Path(p) for p in self.image_roots))
        if self.outages_file is not None:
            object.__setattr__(self, "outages_file", Path(self.outages_file))
        if self.gap_days == 0:
            object.__setattr__(self, "gap_days", None)
        object.__setattr__(self, "allowed_hosts", tuple(h.lower() for h in self.allowed_hosts))
        if self.auth_file is not None:
            object.__setattr__(self, "auth_file", Path(self.auth_file))
        if self.trusted_user_header is not None and not _HEADER.fullmatch(
            self.trusted_user_header
        ):
            raise ConfigError(f"not a header name: {self.trusted_user_header!r}")
        if not 0 < self.port < 65536:
            raise ConfigError(f"port must be 1–65535, got {self.port}")
        if self.tiles == "auto":
            raise ConfigError(
                "tiles 'auto' is gone (it sent the survey area to a public tile server): give "
                "none, or the tile server's URL, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png"
            )
        if self.tiles not in TILE_CHOICES and not _is_tile_template(self.tiles):
            raise ConfigError(
                "tiles must be none or an http(s) URL template with {z}, {x} and {y}, "
                f"got {self.tiles!r}"
            )
        if self.tile_probe_timeout_s <= 0:
            raise ConfigError("tile_probe_timeout_s must be > 0")
        if self.refresh_seconds < 0.5:
            raise ConfigError(f"refresh_seconds must be >= 0.5, got {self.refresh_seconds}")
        if not 5 <= self.default_resolution <= 9:
            raise ConfigError(f"default_resolution must be 5–9, got {self.default_resolution}")
        if not 1 <= self.max_detections <= 500:
            raise ConfigError(f"max_detections must be 1–500, got {self.max_detections}")
        if not 1 <= self.detections_shown <= 500:
            raise ConfigError(f"detections_shown must be 1–500, got {self.detections_shown}")
        if self.event_gap_minutes is not None and self.event_gap_minutes < 0:
            raise ConfigError(f"event_gap_minutes must be >= 0, got {self.event_gap_minutes}")
        if not 32 <= self.thumbnail_px <= 2048:
            raise ConfigError(f"thumbnail_px must be 32–2048, got {self.thumbnail_px}")
        if self.gap_days is not None and not 1 <= self.gap_days <= 365:
            raise ConfigError(f"gap_days must be 1–365 (or 0: off), got {self.gap_days}")
        if self.min_trap_nights < 0:
            raise ConfigError(f"min_trap_nights must be >= 0, got {self.min_trap_nights}")
        if self.min_gi_events < 1 or self.min_gi_cameras < 1:
            raise ConfigError("min_gi_events and min_gi_cameras must be >= 1")
        if not 0 <= self.public_resolution <= 9:
            raise ConfigError(f"public_resolution must be 0–9, got {self.public_resolution}")
        if self.public_min_cameras < 1:
            raise ConfigError(f"public_min_cameras must be >= 1, got {self.public_min_cameras}")
        if not 1 <= self.max_review_bursts <= 200:
            raise ConfigError(f"max_review_bursts must be 1–200, got {self.max_review_bursts}")
        if not 1 <= self.review_bursts_shown <= 200:
            raise ConfigError(
                f"review_bursts_shown must be 1–200, got {self.review_bursts_shown}"
            )

    @property
    def tile_url(self) -> str | None:
        """The tile URL template to try, or None when tiles are off (the default)."""
        return None if self.tiles == "none" else self.tiles


ENV_PREFIX = "UNCIA_SERVE_"


def resolve_settings(
    cli: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config_file: Path | None = None,
) -> Settings:
    """Merge defaults < config file [serve] < environment < command line into Settings.

    `cli` holds only the settings the user gave (None means "not given"). Raises ConfigError
    for an unknown setting, a value of the wrong type or one out of range.
    """
    known = {f.name: f.type for f in fields(Settings)}
    merged = merge_layers(
        known, cli, os.environ if env is None else env, ENV_PREFIX, config_file, "serve"
    )
    if "data_dir" not in merged:
        raise ConfigError("missing required setting data_dir (--data)")
    return Settings(**merged)


def _is_tile_template(value: str) -> bool:
    return value.startswith(("http://", "https://")) and all(
        key in value for key in ("{z}", "{x}", "{y}")
    )

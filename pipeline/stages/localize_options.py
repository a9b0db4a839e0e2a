"""Options of the localization stage, apart from its code so the CLI can show their
defaults without loading torch (`uncia serve` never needs it)."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.errors import ConfigError
from pipeline.schema import LocalizeMethod

METHODS = tuple(m.value for m in LocalizeMethod)  # lime, gradcam, megadetector


@dataclass(frozen=True)
class LimeOptions:
    """LIME settings. `samples` random masks over about `segments` SLIC superpixels, scored
    `batch_size` at a time; `kernel_width` of the exponential kernel on cosine distance;
    `box_fraction`: heat at or above this fraction of the peak forms the box."""

    samples: int = 300
    segments: int = 50
    compactness: float = 10.0
    batch_size: int = 50
    kernel_width: float = 0.25
    box_fraction: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.samples < 10:
            raise ConfigError(f"LIME needs at least 10 samples, got {self.samples}")
        if not 0 < self.box_fraction < 1:
            raise ConfigError(f"box fraction must be in (0, 1), got {self.box_fraction}")


@dataclass(frozen=True)
class GradCamOptions:
    box_fraction: float = 0.5
    batch_size: int = 16

    def __post_init__(self) -> None:
        if not 0 < self.box_fraction < 1:
            raise ConfigError(f"box fraction must be in (0, 1), got {self.box_fraction}")

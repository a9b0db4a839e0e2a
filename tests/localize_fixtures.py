"""Frames made in code for localization and identification tests: one obvious object, or a
generated rosette coat (bench.patterns) filling most of a camera-trap-sized frame."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from bench.patterns import coat, sighting

# A bright orange disk on grass: efficientnet_lite0 calls it a ping-pong ball (ImageNet 722).
PING_PONG_BALL = 722


def grass(side: int = 224, seed: int = 0) -> np.ndarray:
    """A mottled green background with no object in it."""
    rng = np.random.default_rng(seed)
    low = cv2.resize(rng.normal(0, 1, (14, 14)).astype(np.float32), (side, side))
    frame = np.zeros((side, side, 3), np.float32)
    frame[:] = (95, 115, 70)
    frame += 15 * low[..., None] + rng.normal(0, 6, (side, side, 3))
    return np.clip(frame, 0, 255).astype(np.uint8)


def disk_frame(centre: tuple[int, int] = (70, 150), radius: int = 35) -> tuple[np.ndarray, tuple]:
    """A 224x224 frame with one orange disk; returns (pixels, the disk's normalized box)."""
    frame = grass()
    cv2.circle(frame, centre, radius, (255, 140, 0), -1)
    side = frame.shape[0]
    box = (
        (centre[0] - radius) / side,
        (centre[1] - radius) / side,
        2 * radius / side,
        2 * radius / side,
    )
    return frame, box


def coat_jpeg(individual: int, seed: int, mirror: bool = False) -> bytes:
    """A 640x480 JPEG: a sighting of `individual`'s coat filling most of a grass frame."""
    frame = cv2.resize(grass(seed=seed), (640, 480))
    patch = cv2.resize(sighting(coat(individual), seed, mirror), (400, 400))
    frame[40:440, 120:520] = patch
    buffer = io.BytesIO()
    Image.fromarray(frame).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()

"""Generated rosette coats and sightings of them, for the identification benchmark and tests.

An individual is a seeded coat (open rosettes and solid spots on a mottled background); a
sighting is that coat under a random affine warp (rotation, scale, shear, shift), blur, lighting,
noise, partial occlusion, JPEG compression and, sometimes, a left-right mirror.
"""

from __future__ import annotations

import cv2
import numpy as np

COAT_SIDE = 320
CROP_SIDE = 256


def coat(individual: int, side: int = COAT_SIDE) -> np.ndarray:
    """The uint8 RGB coat of individual number `individual` (same number, same coat)."""
    rng = np.random.default_rng(10_000 + individual)
    low = rng.normal(0, 1, (side // 32, side // 32)).astype(np.float32)
    mottle = cv2.resize(low, (side, side), interpolation=cv2.INTER_CUBIC)
    fur = cv2.GaussianBlur(rng.normal(0, 1, (side, side)).astype(np.float32), (0, 0), 1.0)
    grey = 175 + 12 * mottle + 6 * fur
    canvas = np.clip(grey, 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(35, 50))):
        centre = (int(rng.integers(8, side - 8)), int(rng.integers(8, side - 8)))
        ink = int(rng.integers(25, 70))
        if rng.random() < 0.65:  # an open rosette: a thick broken ring
            axes = (int(rng.integers(7, 17)), int(rng.integers(6, 15)))
            angle = float(rng.uniform(0, 180))
            start = float(rng.uniform(0, 360))
            for arc in range(int(rng.integers(2, 4))):
                a0 = start + arc * 120 + float(rng.uniform(0, 25))
                cv2.ellipse(
                    canvas,
                    centre,
                    axes,
                    angle,
                    a0,
                    a0 + float(rng.uniform(50, 95)),
                    ink,
                    int(rng.integers(2, 5)),
                )
        else:  # a solid spot
            axes = (int(rng.integers(2, 7)), int(rng.integers(2, 6)))
            cv2.ellipse(canvas, centre, axes, float(rng.uniform(0, 180)), 0, 360, ink, -1)
    tint = np.array([1.0, 0.95, 0.85], np.float32)
    return np.clip(canvas[..., None].astype(np.float32) * tint, 0, 255).astype(np.uint8)


def sighting(
    coat_rgb: np.ndarray, seed: int, mirror: bool = False, hard: bool = False
) -> np.ndarray:
    """One uint8 RGB (CROP_SIDE, CROP_SIDE, 3) sighting of a coat; `mirror` flips it; `hard`
    widens every range (rotation ±45°, scale 0.6-1.4, shear ±0.3, blur to 2.5 px, occlusion to
    40% of the crop)."""
    rng = np.random.default_rng(seed)
    k = 1.8 if hard else 1.0
    side = coat_rgb.shape[0]
    angle = float(rng.uniform(-25, 25)) * k
    scale = float(rng.uniform(0.6, 1.4) if hard else rng.uniform(0.8, 1.2))
    shear = float(rng.uniform(-0.15, 0.15)) * (2.0 if hard else 1.0)
    shift = rng.uniform(-15, 15, 2)
    rotation = cv2.getRotationMatrix2D((side / 2, side / 2), angle, scale)
    rotation[:, 2] += (CROP_SIDE - side) / 2 + shift
    shear_matrix = np.array([[1, shear, -shear * CROP_SIDE / 2], [0, 1, 0]], np.float64)
    warp = np.vstack([shear_matrix, [0, 0, 1]]) @ np.vstack([rotation, [0, 0, 1]])
    image: np.ndarray = cv2.warpAffine(
        coat_rgb, warp[:2], (CROP_SIDE, CROP_SIDE), borderMode=cv2.BORDER_REFLECT
    ).astype(np.float32)
    sigma = float(rng.uniform(0, 2.5 if hard else 1.6))
    if sigma > 0.3:
        image = cv2.GaussianBlur(image, (0, 0), sigma)
    # Lighting: contrast, brightness, a gradient across the crop, gamma.
    ramp = np.linspace(-1, 1, CROP_SIDE, dtype=np.float32)
    gradient = float(rng.uniform(-25, 25)) * (
        ramp[None, :] if rng.random() < 0.5 else ramp[:, None]
    )
    image = image * float(rng.uniform(0.65, 1.25)) + float(rng.uniform(-35, 35))
    image = image + gradient[..., None]
    image = 255.0 * (np.clip(image, 0, 255) / 255.0) ** float(rng.uniform(0.75, 1.35))
    image += rng.normal(0, float(rng.uniform(2, 6)), image.shape).astype(np.float32)
    out: np.ndarray = np.clip(image, 0, 255).astype(np.uint8)
    # Partial occlusion: a grass-coloured block over up to a quarter of the crop.
    height = int(rng.integers(30, 160 if hard else 130))
    width = int(rng.integers(30, 160 if hard else 130))
    top, left = int(rng.integers(0, CROP_SIDE - height)), int(rng.integers(0, CROP_SIDE - width))
    out[top : top + height, left : left + width] = rng.integers(60, 120, 3, dtype=np.uint8)
    ok, encoded = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(60, 92))])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_UNCHANGED) if ok else None
    out = out if decoded is None else decoded
    return np.ascontiguousarray(out[:, ::-1]) if mirror else out

"""A labelled survey made in code for the training tests: frames with a big spotted coat (the
"leopard") or plain textures, in several deployments, in bursts with EXIF times; and `uncia`
run in the test process, so the model loads once."""

from __future__ import annotations

import contextlib
import csv
import io
import subprocess
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from cli.main import main

T0 = datetime(2024, 3, 1, 5, 0, 0)


def spotted_jpeg(seed: int, when: datetime | None = None, size: int = 256) -> bytes:
    """A tawny frame covered by dark rosettes: the visual signature of a spotted cat."""
    rng = np.random.default_rng(seed)
    base = np.array([170, 140, 95]) + rng.integers(-20, 20, 3)
    image = Image.new("RGB", (size, size), tuple(int(x) for x in base))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(30, 45))):
        x, y = rng.integers(0, size, 2)
        r = int(rng.integers(8, 18))
        draw.ellipse((x - r, y - r, x + r, y + r), outline=(40, 30, 20), width=4)
        draw.ellipse((x - r // 3, y - r // 3, x + r // 3, y + r // 3), fill=(60, 45, 30))
    return _jpeg(image, when)


def plain_jpeg(seed: int, when: datetime | None = None, size: int = 256) -> bytes:
    """A smooth grey-green gradient with a little noise: rock, grass, an empty frame."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(60, 200, 3), rng.integers(60, 200, 3)
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    pixels = top * (1 - ramp) + bottom * ramp + rng.normal(0, 6, (size, size, 3))
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).filter(ImageFilter.BLUR)
    return _jpeg(image, when)


def _jpeg(image: Image.Image, when: datetime | None) -> bytes:
    exif = Image.Exif()
    if when is not None:
        exif.get_ifd(0x8769)[36867] = when.strftime("%Y:%m:%d %H:%M:%S")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


@dataclass(frozen=True)
class Survey:
    root: Path
    labels: Path
    deployments: list[str]
    n_frames: int
    n_bursts: int
    leopard_files: list[str]


def make_survey(
    base: Path, n_deployments: int = 5, frames_per_burst: int = 3, seed: int = 0
) -> Survey:
    """ROOT/<CAM-i>/IMG_*.JPG: per deployment one leopard burst and two empty bursts (an hour
    apart, frames 2 s apart), and labels.csv naming each file's label."""
    root = base / "images"
    rows, leopards, seq = [], [], seed * 1000
    for d in range(n_deployments):
        dep = f"CAM-{d + 1}"
        (root / dep).mkdir(parents=True)
        for b, label in enumerate(("snow_leopard", "empty", "empty")):
            for f in range(frames_per_burst):
                when = T0 + timedelta(days=d, hours=b, seconds=2 * f)
                name = f"{dep}/IMG_{b}{f:03d}.JPG"
                seq += 1
                maker = spotted_jpeg if label == "snow_leopard" else plain_jpeg
                (root / name).write_bytes(maker(seq, when))
                rows.append({"file": name, "label": label})
                if label == "snow_leopard":
                    leopards.append(name)
    labels = base / "labels.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return Survey(
        root,
        labels,
        [f"CAM-{d + 1}" for d in range(n_deployments)],
        len(rows),
        3 * n_deployments,
        leopards,
    )


def rocky_scene(seed: int, width: int = 1280, height: int = 960) -> Image.Image:
    """A wide, busy, grey-brown hillside: blurred noise with rocks (grey ellipses)."""
    rng = np.random.default_rng(seed)
    small = rng.normal(0, 12, (height // 16, width // 16, 1)) + rng.normal(0, 3, (1, 1, 3))
    base = np.array([120, 112, 100]) + rng.integers(-25, 25, 3)
    field = Image.fromarray(np.clip(base + small, 0, 255).astype(np.uint8)).resize(
        (width, height), Image.Resampling.BICUBIC
    )
    draw = ImageDraw.Draw(field)
    for _ in range(60):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        rx, ry = int(rng.integers(15, 60)), int(rng.integers(10, 40))
        grey = int(rng.integers(70, 190))
        draw.ellipse((x - rx, y - ry, x + rx, y + ry), fill=(grey, grey - 5, grey - 12))
    noise = rng.normal(0, 8, (height, width, 3))
    return Image.fromarray(np.clip(np.asarray(field) + noise, 0, 255).astype(np.uint8))


def small_patch_frame(seed: int, spotted: bool, when: datetime | None = None) -> bytes:
    """A wide rocky frame with one small (about 110 px of 1280) patch near a random corner: a
    spotted coat (the "leopard") or a plain tawny one of the same colour (a stone)."""
    rng = np.random.default_rng(seed + 10_000)
    scene = rocky_scene(seed)
    side = 110
    patch = (
        Image.open(io.BytesIO(spotted_jpeg(seed, size=2 * side))).resize((side, side))
        if spotted
        else Image.new("RGB", (side, side), (150, 122, 82))
    )
    corner = int(rng.integers(0, 4))
    x = (
        40 + int(rng.integers(0, 120))
        if corner % 2 == 0
        else 1280 - side - 40 - int(rng.integers(0, 120))
    )
    y = 40 + int(rng.integers(0, 80)) if corner < 2 else 960 - side - 40 - int(rng.integers(0, 80))
    scene.paste(patch, (x, y))
    return _jpeg(scene, when)


def make_patch_survey(
    base: Path, n_deployments: int = 6, per_class: int = 4, seed: int = 0
) -> Survey:
    """ROOT/<CAM-i>/IMG_*.JPG: per deployment `per_class` frames with a small spotted patch
    (labelled snow_leopard) and as many with a plain patch (empty), an hour apart (no bursts:
    no motion), and labels.csv. The signal fills about 1% of each frame."""
    root = base / "images"
    rows, leopards = [], []
    for d in range(n_deployments):
        dep = f"CAM-{d + 1}"
        (root / dep).mkdir(parents=True)
        for f in range(2 * per_class):
            spotted = f % 2 == 0
            label = "snow_leopard" if spotted else "empty"
            name = f"{dep}/IMG_{f:04d}.JPG"
            when = T0 + timedelta(days=d, hours=f)
            (root / name).write_bytes(small_patch_frame(seed + 100 * d + f, spotted, when))
            rows.append({"file": name, "label": label})
            if spotted:
                leopards.append(name)
    labels = base / "labels.csv"
    with labels.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["file", "label"])
        writer.writeheader()
        writer.writerows(rows)
    return Survey(
        root, labels, [f"CAM-{d + 1}" for d in range(n_deployments)], len(rows), len(rows), leopards
    )


def uncia_in_process(*args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the `uncia` command in this process (the model loads once per test session, not
    once per command); return its exit status and output like subprocess.run would."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    result = subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"uncia {args} failed:\n{result.stdout}\n{result.stderr}")
    return result

"""`python -m bench.views_bench`: frames/s of tiled scoring on 12 Mpx frames, side by side in one
run: (t) the default `uncia run` (whole frame + 4x3 tiles + motion crops, OpenVINO where
installed), (w) the same pipeline scoring whole frames only, and (p) the plain loop a user
would write to tile the same frames (full decode, crop, torchvision transforms, fp32 torch).

Targets (issue #12): t >= 12 frames/s on 2 cores, t/p >= 3. Results: bench/results/views.json.
"""

# ruff: noqa: E402
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `uncia` sets it, before torch loads

import argparse
import io
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

import torch
from PIL import Image
from torch import nn
from torchvision import transforms

from bench.__main__ import (
    WORK,
    ensure_frames,
    machine_info,
    measure,
    peak_rss_mib,
    write_json_atomically,
)
from pipeline.config import RunOptions
from pipeline.runs.runner import run_survey
from pipeline.stages.embed import BACKBONES, load_backbone, locate_weights, untrained_network
from pipeline.stages.views import DEFAULT_GRIDS, DEFAULT_OVERLAP, ViewOptions, tile_boxes

RESULTS = Path(__file__).resolve().parent / "results" / "views.json"
TARGET_FPS, TARGET_OVER_PLAIN = 12.0, 3.0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.views_bench", description=__doc__)
    parser.add_argument("--frames", type=int, default=96, help="frames for t and w")
    parser.add_argument("--plain-frames", type=int, default=16, help="frames for p (slow)")
    parser.add_argument("--backbone", choices=BACKBONES, default="efficientnet_lite0")
    parser.add_argument("--runtime", choices=("auto", "torch", "openvino"), default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    return parser.parse_args(argv)


def pipeline_run(root: Path, deployments: Path, views: str, args: argparse.Namespace) -> int:
    """`run_survey` end to end, loading its backbone as `uncia run` does."""
    out = Path(tempfile.mkdtemp(prefix="views-", dir=WORK))
    try:
        options = RunOptions(
            images_root=root,
            deployments=deployments,
            out_dir=out,
            backbone=args.backbone,
            runtime=args.runtime,
            views=views,
            progress=False,
        )
        return run_survey(options, log=io.StringIO()).frames_done
    finally:
        shutil.rmtree(out, ignore_errors=True)


def plain_tiling_loop(paths: Sequence[Path], network: nn.Module, mean, std) -> int:  # type: ignore[no-untyped-def]
    """(p) The loop a user writes to tile frames: full decode, crop the whole frame and the
    same 4x3 tiles, torchvision transforms, fp32, one frame's views per batch."""
    prepare = transforms.Compose(
        [transforms.Resize((224, 224)), transforms.ToTensor(), transforms.Normalize(mean, std)]
    )
    with torch.no_grad():
        for path in paths:
            image = Image.open(path).convert("RGB")
            boxes = [(0, 0, *image.size), *tile_boxes(*image.size, DEFAULT_GRIDS, DEFAULT_OVERLAP)]
            batch = torch.stack([prepare(image.crop(tuple(map(round, b)))) for b in boxes])
            network(batch).softmax(dim=1)
    return len(paths)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_before = time.time(), os.getloadavg()[0]
    root, deployments, frames = ensure_frames(args.frames, 2)
    path, _ = locate_weights(args.backbone, None, download=False)
    stock = untrained_network(args.backbone)
    stock.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    stock.eval()
    reference = load_backbone(args.backbone, path, "cpu", "fp32")
    mean, std = reference.mean, reference.std
    views = ViewOptions()
    print(
        f"{len(frames)} frames 4000x3000, {args.backbone} ({args.runtime} runtime), "
        f"up to {views.views_per_frame()} views a frame (whole + {DEFAULT_GRIDS} tiles + "
        f"motion), {torch.get_num_threads()} torch threads"
    )
    if load_before > 0.5:
        print(f"warning: load average {load_before:.1f}: other processes share the CPU")
    runs = measure(
        {
            "t": lambda: pipeline_run(root, deployments, "tiles+motion", args),
            "w": lambda: pipeline_run(root, deployments, "whole", args),
            "p": lambda: plain_tiling_loop(frames[: args.plain_frames], stock, mean, std),
        },
        {  # first use converts/compiles the model and builds kernels: not part of the rate
            "t": lambda: pipeline_run(root, deployments, "tiles+motion", args),
            "p": lambda: plain_tiling_loop(frames[:2], stock, mean, std),
        },
        args.repeats,
    )
    best = runs.best()
    over_plain, over_whole = best["t"] / best["p"], best["t"] / best["w"]
    print(
        f"(t) tiled default, run_survey:   {best['t']:6.1f} frames/s (target >= {TARGET_FPS})\n"
        f"(w) whole frame, run_survey:     {best['w']:6.1f} frames/s\n"
        f"(p) plain tiling loop, fp32:     {best['p']:6.1f} frames/s\n"
        f"t/p = {over_plain:.2f} (target >= {TARGET_OVER_PLAIN})   t/w = {over_whole:.2f}"
    )
    write_json_atomically(
        args.out,
        {
            "finished_at": datetime.now().isoformat(timespec="seconds"),
            "seconds": round(time.time() - started, 1),
            "frames_per_second": {k: round(v, 2) for k, v in best.items()},
            "ratios": {"t_over_p": round(over_plain, 2), "t_over_w": round(over_whole, 2)},
            "targets": {"t_fps": TARGET_FPS, "t_over_p": TARGET_OVER_PLAIN},
            "all_repeats": {k: [round(v, 2) for v in vs] for k, vs in runs.fps.items()},
            "cpu_ms_per_frame_best": {k: round(min(vs), 1) for k, vs in runs.cpu_ms.items()},
            "frames": runs.frames,
            "backbone": args.backbone,
            "runtime": args.runtime,
            "views_per_frame_max": views.views_per_frame(),
            "peak_rss_mib": round(peak_rss_mib(), 1),
            "load_average_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "machine": machine_info(),
        },
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

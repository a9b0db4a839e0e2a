"""Localization stage: where in the frame is the animal the classifier saw? No boxes needed.

Two explainers of the classifier's own score give a heat map and a box (normalized
[x, y, width, height], top-left origin, fractions of the upright frame, as MegaDetector writes):
`lime_explain` (LIME over SLIC superpixels: random on/off masks scored in batches, a kernel-
weighted linear fit) and `gradcam_explain` (Grad-CAM on the backbone's last convolutional block,
one forward and backward pass). Both are pure functions of pixels, so an engine can map them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np
import torch
from scipy import ndimage
from skimage.segmentation import slic

from pipeline.errors import ConfigError
from pipeline.stages.embed import Backbone
from pipeline.stages.localize_options import GradCamOptions, LimeOptions

Box = tuple[float, float, float, float]
DEFAULT_LIME = LimeOptions()
DEFAULT_GRADCAM = GradCamOptions()
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Explanation:
    """A heat map (float32 (H, W), 0..1, 1 at the peak) and the box around its hottest blob.

    `score` is the explained probability on the whole, unmasked frame."""

    method: str
    heatmap: np.ndarray
    box: Box
    score: float


def box_from_heatmap(heatmap: np.ndarray, fraction: float = 0.5) -> Box:
    """The normalized [x, y, width, height] box of the hottest connected region.

    Pixels at or above `fraction` of the peak are kept; of their connected regions the one
    holding the most heat wins. A flat (all-zero) map gives the whole frame.
    """
    heat = np.asarray(heatmap, dtype=np.float32)
    height, width = heat.shape
    peak = float(heat.max()) if heat.size else 0.0
    if peak <= 0:
        return (0.0, 0.0, 1.0, 1.0)
    labels, count = ndimage.label(heat >= fraction * peak)
    sums = ndimage.sum(heat, labels, index=np.arange(1, count + 1))
    rows, cols = np.nonzero(labels == int(np.argmax(sums)) + 1)
    x0, x1, y0, y1 = cols.min(), cols.max() + 1, rows.min(), rows.max() + 1
    return (x0 / width, y0 / height, (x1 - x0) / width, (y1 - y0) / height)


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two [x, y, width, height] boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


def lime_explain(
    pixels: np.ndarray, score_fn: ScoreFn, options: LimeOptions = DEFAULT_LIME
) -> Explanation:
    """Explain `score_fn` on one uint8 (H, W, 3) frame with LIME.

    `score_fn` maps uint8 (N, H, W, 3) frames to (N,) probabilities. Masked superpixels are
    filled with the frame's mean colour. Returns the Explanation; superpixels with negative
    weight get no heat.
    """
    image = np.asarray(pixels)
    segments = slic(
        image, n_segments=options.segments, compactness=options.compactness, start_label=0
    )
    count = int(segments.max()) + 1
    rng = np.random.default_rng(options.seed)
    masks = rng.random((options.samples, count)) < 0.5
    masks[0] = True  # the unmasked frame: its score is the one explained
    fill = image.reshape(-1, 3).mean(axis=0).astype(np.uint8)
    scores = np.empty(options.samples, dtype=np.float64)
    for start in range(0, options.samples, options.batch_size):
        chunk = masks[start : start + options.batch_size]
        keep = chunk[:, segments]  # (B, H, W) boolean, per pixel
        batch = np.where(keep[..., None], image[None], fill)
        scores[start : start + len(chunk)] = score_fn(batch.astype(np.uint8))
    on = masks.astype(np.float64)
    # Cosine distance of each mask to the all-on mask; LIME's exponential kernel on it.
    cosine = on.sum(axis=1) / (np.sqrt(on.sum(axis=1)) * np.sqrt(count) + 1e-12)
    distance = 1.0 - cosine
    weights = np.sqrt(np.exp(-(distance**2) / options.kernel_width**2))
    design = np.column_stack([on, np.ones(options.samples)])
    root = np.sqrt(weights)[:, None]
    ridge = 1.0 * np.eye(count + 1)
    ridge[-1, -1] = 0.0  # the intercept is not shrunk
    a = (design * root).T @ (design * root) + ridge
    b = (design * root).T @ (scores * root[:, 0])
    coefficients = np.linalg.solve(a, b)[:count]
    heat = np.clip(coefficients, 0, None)[segments].astype(np.float32)
    if heat.max() > 0:
        heat /= heat.max()
    return Explanation("lime", heat, box_from_heatmap(heat, options.box_fraction), float(scores[0]))


class Target(Protocol):
    """The class an explainer explains: a probability in numpy and a logit in torch."""

    name: str

    def probability(self, features: np.ndarray) -> np.ndarray: ...

    def logit(self, features: torch.Tensor) -> torch.Tensor: ...


class ImageNetTarget:
    """ImageNet class(es) of the backbone's own head (289 snow leopard, 288 leopard, 290 jaguar,
    293 cheetah): the probability is their summed softmax, the logit their logsumexp."""

    def __init__(self, backbone: Backbone, classes: int | Sequence[int]) -> None:
        indices = (classes,) if isinstance(classes, int) else tuple(classes)
        if not indices or not all(0 <= c < 1000 for c in indices):
            raise ConfigError(f"ImageNet classes must be 0..999, got {classes}")
        self.backbone = backbone
        self.classes = indices
        self.name = "imagenet:" + ",".join(map(str, indices))

    def probability(self, features: np.ndarray) -> np.ndarray:
        logits = self.backbone.imagenet_logits(features).astype(np.float64)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return (p[:, list(self.classes)].sum(axis=1) / p.sum(axis=1)).astype(np.float32)

    def logit(self, features: torch.Tensor) -> torch.Tensor:
        logits = self.backbone.head(features.float())[:, list(self.classes)]
        return torch.logsumexp(logits, dim=1)


def score_function(backbone: Backbone, target: Target) -> ScoreFn:
    """uint8 (N, H, W, 3) frames -> (N,) probability of `target`, through `backbone`."""

    def score(pixels: np.ndarray) -> np.ndarray:
        side = backbone.input_size
        if pixels.shape[1:3] != (side, side):  # the explainer may work on larger frames
            pixels = np.stack(
                [cv2.resize(p, (side, side), interpolation=cv2.INTER_AREA) for p in pixels]
            )
        return target.probability(backbone.embed(pixels))

    return score


def _last_conv_maps(backbone: Backbone, images: torch.Tensor) -> torch.Tensor:
    """The output of the backbone's last convolutional block, (N, C, h, w)."""
    trunk: torch.nn.Module = backbone.trunk
    if backbone.name == "efficientnet_lite0":
        return trunk.network.extract_features(images)  # type: ignore[union-attr,operator]
    stem = trunk.maxpool(trunk.relu(trunk.bn1(trunk.conv1(images))))  # type: ignore[operator]
    return trunk.layer4(trunk.layer3(trunk.layer2(trunk.layer1(stem))))  # type: ignore[operator]


def gradcam_explain(
    pixels: np.ndarray,
    backbone: Backbone,
    target: Target,
    options: GradCamOptions = DEFAULT_GRADCAM,
) -> list[Explanation]:
    """Grad-CAM for uint8 (N, S, S, 3) frames (S = backbone.input_size); one Explanation each.

    The gradient of the target's logit with respect to the last convolutional block's output,
    averaged per channel, weights that output; its positive part, upsampled, is the heat map.
    """
    frames = np.asarray(pixels)
    out: list[Explanation] = []
    dtype = next(backbone.trunk.parameters()).dtype
    mean = torch.tensor(backbone.mean, device=backbone.device).view(1, 3, 1, 1)
    std = torch.tensor(backbone.std, device=backbone.device).view(1, 3, 1, 1)
    for start in range(0, len(frames), options.batch_size):
        part = frames[start : start + options.batch_size]
        chunk = torch.from_numpy(np.require(part, requirements=["C", "W"]))
        images = chunk.to(backbone.device).permute(0, 3, 1, 2).float().div(255.0)
        images = ((images - mean) / std).to(dtype).contiguous(memory_format=torch.channels_last)
        with torch.enable_grad():
            images.requires_grad_(True)
            maps = _last_conv_maps(backbone, images)
            maps.retain_grad()
            logits = target.logit(maps.float().mean(dim=(2, 3)))
            logits.sum().backward()
        grads = maps.grad.float()  # type: ignore[union-attr]
        cams = torch.relu((grads.mean(dim=(2, 3), keepdim=True) * maps.detach().float()).sum(1))
        cams = torch.nn.functional.interpolate(
            cams[:, None], size=frames.shape[1:3], mode="bilinear", align_corners=False
        )[:, 0]
        with torch.no_grad():
            probabilities = target.probability(maps.detach().float().mean(dim=(2, 3)).cpu().numpy())
        for cam, probability in zip(cams.cpu().numpy(), probabilities, strict=True):
            heat = cam.astype(np.float32)
            if heat.max() > 0:
                heat /= heat.max()
            out.append(
                Explanation(
                    "gradcam",
                    heat,
                    box_from_heatmap(heat, options.box_fraction),
                    float(probability),
                )
            )
    return out

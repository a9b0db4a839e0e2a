"""A trained head and its model folder: standardized logistic-regression coefficients plus
calibration in `head.npz`, everything else (classes, threshold, backbone, training-set hash,
metrics) in `model.json`. `TrainedHead` is the `Classifier` that `uncia run --model` plugs in,
`HeadTarget` the explanation target `uncia localize` uses for a frame such a head scored.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError, ModelError
from pipeline.stages.classify import TOP_K, FrameScores
from pipeline.stages.embed import Backbone
from pipeline.store.store import atomic_write_bytes, atomic_write_text

MODEL_FORMAT = 1
MODEL_JSON = "model.json"
HEAD_NPZ = "head.npz"


@dataclass(frozen=True, eq=False)
class HeadParameters:
    """Logistic regression on standardized features, then calibration.

    Binary heads have one coefficient row (`coef` (1, D)); the calibrated probability of the
    positive class is sigmoid(a·z + b) with z the logit (Platt scaling). Multi-class heads have
    one row per class; probabilities are softmax(logits / T) (temperature scaling).
    """

    classes: tuple[str, ...]
    positive_classes: tuple[str, ...]  # their probabilities add up to the leopard score
    mean: np.ndarray  # (D,)
    scale: np.ndarray  # (D,)
    coef: np.ndarray  # (1, D) binary, (K, D) multi-class
    intercept: np.ndarray  # (1,) or (K,)
    calibration: dict[str, float] = field(default_factory=dict)  # {"a", "b"} or {"temperature"}

    @property
    def feature_dim(self) -> int:
        return int(self.coef.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated logits: (N,) for a binary head, (N, K) for a multi-class head."""
        x = (np.asarray(features, dtype=np.float64) - self.mean) / self.scale
        z = x @ self.coef.T.astype(np.float64) + self.intercept
        return z[:, 0] if len(self.classes) == 2 and z.shape[1] == 1 else z

    def probabilities_from_logits(self, z: np.ndarray) -> np.ndarray:
        """Calibrated (N, K) class probabilities from `logits` output."""
        if z.ndim == 1:
            a, b = self.calibration.get("a", 1.0), self.calibration.get("b", 0.0)
            positive = 1.0 / (1.0 + np.exp(-(a * z + b)))
            return np.column_stack([1.0 - positive, positive])
        scaled = z / self.calibration.get("temperature", 1.0)
        scaled -= scaled.max(axis=1, keepdims=True)
        p = np.exp(scaled)
        return p / p.sum(axis=1, keepdims=True)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        return self.probabilities_from_logits(self.logits(features))

    def leopard_score(self, probabilities: np.ndarray) -> np.ndarray:
        """The summed probability of the positive classes, (N,)."""
        columns = [self.classes.index(c) for c in self.positive_classes]
        return probabilities[:, columns].sum(axis=1)

    def to_npz(self) -> bytes:
        buffer = io.BytesIO()
        np.savez(
            buffer,
            mean=self.mean.astype(np.float64),
            scale=self.scale.astype(np.float64),
            coef=self.coef.astype(np.float64),
            intercept=self.intercept.astype(np.float64),
        )
        return buffer.getvalue()


@dataclass(frozen=True, eq=False)
class TrainedModel:
    """A head plus its card (the content of model.json)."""

    head: HeadParameters
    card: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.card["name"])

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @property
    def backbone(self) -> str:
        return str(self.card["backbone"])

    @property
    def weights_sha256(self) -> str:
        return str(self.card["weights_sha256"])

    @property
    def positive_labels(self) -> tuple[str, ...]:
        return tuple(self.card["positive_labels"])


def save_model(model_dir: str | os.PathLike[str], model: TrainedModel) -> None:
    """Write head.npz, then model.json (which names head.npz's sha256), each atomically."""
    folder = Path(model_dir)
    data = model.head.to_npz()
    atomic_write_bytes(data, folder / HEAD_NPZ)
    card = {
        **model.card,
        "format": MODEL_FORMAT,
        "classes": list(model.head.classes),
        "positive_classes": list(model.head.positive_classes),
        "calibration": dict(model.head.calibration),
        "head_npz_sha256": hashlib.sha256(data).hexdigest(),
    }
    atomic_write_text(json.dumps(card, indent=2, sort_keys=True) + "\n", folder / MODEL_JSON)


def load_model(model_dir: str | os.PathLike[str]) -> TrainedModel:
    """Read a model folder written by `uncia train`. Raises ModelError when it is missing,
    incomplete, of an unknown format, or when head.npz does not match model.json."""
    folder = Path(model_dir)
    try:
        card = json.loads((folder / MODEL_JSON).read_text(encoding="utf-8"))
        data = (folder / HEAD_NPZ).read_bytes()
    except FileNotFoundError as exc:
        raise ModelError(f"{folder} is not a model folder (no {Path(exc.filename).name})") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise ModelError(f"cannot read model {folder}: {exc}") from exc
    if card.get("format") != MODEL_FORMAT:
        raise ModelError(f"{folder}: model format {card.get('format')!r}, expected {MODEL_FORMAT}")
    if hashlib.sha256(data).hexdigest() != card.get("head_npz_sha256"):
        raise ModelError(f"{folder}: {HEAD_NPZ} does not match {MODEL_JSON} (sha256 differs)")
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        head = HeadParameters(
            classes=tuple(card["classes"]),
            positive_classes=tuple(card["positive_classes"]),
            mean=arrays["mean"],
            scale=arrays["scale"],
            coef=arrays["coef"],
            intercept=arrays["intercept"],
            calibration={k: float(v) for k, v in card["calibration"].items()},
        )
    return TrainedModel(head=head, card=card)


def model_run_defaults(model_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The `uncia run` options a model folder implies: its backbone, its threshold, and the
    views it was trained on (whole frames for a head trained before views existed)."""
    model = load_model(model_dir)
    views = model.card.get("views") or {"views": "whole"}
    return {"backbone": model.backbone, "threshold": model.threshold, **views}


class TrainedHead:
    """The `Classifier` of a trained model: calibrated leopard score plus the head's top classes.

    Refuses (ModelError) a backbone other than the one the head was trained on: features of
    another network, or of other weights, mean nothing to it.
    """

    def __init__(self, model: TrainedModel, backbone: Backbone) -> None:
        if backbone.name != model.backbone or backbone.weights_sha256 != model.weights_sha256:
            raise ModelError(
                f"model {model.name} was trained on {model.backbone} (weights "
                f"{model.weights_sha256[:12]}), not on the loaded {backbone.name} (weights "
                f"{backbone.weights_sha256[:12]}); use --backbone {model.backbone} with the "
                "same weights"
            )
        if backbone.feature_dim != model.head.feature_dim:
            raise ModelError(f"model {model.name} expects {model.head.feature_dim}-d features")
        self.model = model
        self.name = model.name

    def score(self, features: np.ndarray) -> FrameScores:
        """Return FrameScores for (N, D) features: `score` is the calibrated leopard probability;
        top labels are the head's own classes, best first (at most 5)."""
        head = self.model.head
        probabilities = head.probabilities(features)
        k = min(TOP_K, len(head.classes))
        top = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return FrameScores(
            score=head.leopard_score(probabilities).astype(np.float32),
            top5_labels=[[head.classes[i] for i in row] for row in top],
            top5_scores=np.take_along_axis(probabilities, top, axis=1).astype(np.float32),
        )


class HeadTarget:
    """The positive class(es) of a head trained by `uncia train`, as the `localize.Target` an
    explainer explains."""

    def __init__(self, model: object) -> None:
        if not isinstance(model, TrainedModel):
            raise ConfigError("HeadTarget needs a TrainedModel")
        self.model = model
        self.name = f"model:{model.name}"

    def probability(self, features: np.ndarray) -> np.ndarray:
        head = self.model.head
        return head.leopard_score(head.probabilities(features)).astype(np.float32)

    def logit(self, features: torch.Tensor) -> torch.Tensor:
        head = self.model.head
        device = features.device
        mean = torch.as_tensor(head.mean, dtype=torch.float32, device=device)
        scale = torch.as_tensor(head.scale, dtype=torch.float32, device=device)
        coef = torch.as_tensor(head.coef, dtype=torch.float32, device=device)
        intercept = torch.as_tensor(head.intercept, dtype=torch.float32, device=device)
        z = ((features.float() - mean) / scale) @ coef.T + intercept
        if z.shape[1] == 1:
            return z[:, 0]
        z = z / head.calibration.get("temperature", 1.0)
        positive = [head.classes.index(c) for c in head.positive_classes]
        return torch.logsumexp(z[:, positive], dim=1) - torch.logsumexp(z, dim=1)

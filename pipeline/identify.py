"""Identification stage: which individual is this? HotSpotter-style spot-pattern matching.

Each crop gives RootSIFT keypoints; every descriptor of the catalog goes into one FLANN KD-tree
index built once. A query's descriptors vote for catalog crops by LNBNN (local naive-Bayes
nearest neighbour: how much closer a crop's descriptor is than the k+1-th neighbour), the best
candidates are verified with a RANSAC affine fit, and a mirrored copy of the query is matched
too, so a flipped picture of the same flank is found. Accepted pairs are joined by union-find
into individuals.
"""

from __future__ import annotations

import hashlib
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow as pa

from pipeline.errors import ConfigError
from pipeline.schema import MATCHES

# FLANN's KD-tree algorithm id (cv2 does not export the enum).
_FLANN_KDTREE = 1


@dataclass(frozen=True)
class IdentifyOptions:
    """How crops are described, matched and verified.

    `crop_side`: crops are resized so their longer side is this many pixels (keypoint scale
    then means the same thing in every crop). `knn`: neighbours per query descriptor, the
    (knn+1)-th is LNBNN's normaliser. `shortlist`: candidates spatially verified per query.
    `accept_score`: a match at or above this verified score is proposed as the same individual.
    """

    max_keypoints: int = 400
    crop_side: int = 256
    knn: int = 5
    shortlist: int = 20
    top_k: int = 5
    min_inliers: int = 6
    ransac_threshold_px: float = 6.0
    accept_score: float = 4.0
    mirror: bool = True
    flann_trees: int = 4
    flann_checks: int = 48

    def __post_init__(self) -> None:
        if self.knn < 1 or self.shortlist < 1 or self.top_k < 1:
            raise ConfigError("knn, shortlist and top_k must be at least 1")
        if self.crop_side < 32:
            raise ConfigError(f"crop_side {self.crop_side} is too small (at least 32)")


@dataclass(frozen=True)
class Features:
    """RootSIFT keypoints of one crop: (n, 2) float32 positions and (n, 128) descriptors."""

    points: np.ndarray
    descriptors: np.ndarray


@dataclass(frozen=True)
class Candidate:
    """One ranked catalog crop for a query. `score` is the LNBNN evidence of the RANSAC inliers
    (0 when verification failed); `mirrored` says the mirrored query gave this score."""

    crop_id: str
    score: float
    inliers: int
    mirrored: bool


def _grey(image: np.ndarray, side: int) -> np.ndarray:
    """uint8 grey crop whose longer side is `side` pixels."""
    array = np.asarray(image)
    if array.ndim == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2GRAY)
    height, width = array.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(array, size, interpolation=interpolation)


def extract_features(image: np.ndarray, options: IdentifyOptions = IdentifyOptions()) -> Features:
    """RootSIFT features of a uint8 RGB (H, W, 3) or grey (H, W) crop.

    RootSIFT: L1-normalise each SIFT descriptor and take the square root, so Euclidean distance
    between descriptors becomes the Hellinger kernel (Arandjelović & Zisserman 2012). A crop
    without texture gives zero keypoints, not an error.
    """
    grey = _grey(image, options.crop_side)
    sift = cv2.SIFT.create(nfeatures=options.max_keypoints)
    keypoints, descriptors = sift.detectAndCompute(grey, None)
    if descriptors is None or not keypoints:
        return Features(np.empty((0, 2), np.float32), np.empty((0, 128), np.float32))
    raw = np.asarray(descriptors, dtype=np.float32)
    root = np.sqrt(raw / (raw.sum(axis=1, keepdims=True) + 1e-7)).astype(np.float32)
    points = np.array([k.pt for k in keypoints], dtype=np.float32)
    return Features(points, root)


class Catalog:
    """Every crop's features in one approximate nearest-neighbour index, built once.

    `crop_ids[i]` names crop i; queries are answered by `rank`. Raises ConfigError for
    duplicate ids.
    """

    def __init__(
        self,
        crop_ids: Sequence[str],
        features: Sequence[Features],
        options: IdentifyOptions = IdentifyOptions(),
    ) -> None:
        if len(set(crop_ids)) != len(crop_ids):
            raise ConfigError("crop ids of a catalog must be unique")
        self.options = options
        self.crop_ids = list(crop_ids)
        self.features = list(features)
        owners = [np.full(len(f.descriptors), i, np.int32) for i, f in enumerate(self.features)]
        self._owner = np.concatenate(owners) if owners else np.empty(0, np.int32)
        self._local = (
            np.concatenate([np.arange(len(f.descriptors)) for f in self.features])
            if self.features
            else np.empty(0, np.int64)
        )
        self._index: cv2.flann.Index | None = None
        if len(self._owner) > options.knn + 1:
            data = np.ascontiguousarray(np.concatenate([f.descriptors for f in self.features]))
            self._index = cv2.flann.Index(
                data, {"algorithm": _FLANN_KDTREE, "trees": options.flann_trees}
            )

    def __len__(self) -> int:
        return len(self.crop_ids)

    def _vote(
        self, query: Features, exclude: int | None
    ) -> tuple[dict[int, float], dict[int, list[tuple[int, int, float]]]]:
        """LNBNN votes per crop and the (query kp, crop kp, weight) correspondences behind them."""
        votes: dict[int, float] = defaultdict(float)
        pairs: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
        if self._index is None or len(query.descriptors) == 0:
            return votes, pairs
        k = self.options.knn + 1
        found, dist2 = self._index.knnSearch(
            query.descriptors, k, params={"checks": self.options.flann_checks}
        )
        distances = np.sqrt(np.maximum(dist2, 0.0))
        for q in range(len(found)):
            normaliser = distances[q, -1]
            seen: set[int] = set()
            for j in range(k - 1):
                neighbour = int(found[q, j])
                if neighbour < 0:
                    break
                owner = int(self._owner[neighbour])
                if owner == exclude or owner in seen:
                    continue  # one vote per crop per query descriptor: its closest one
                seen.add(owner)
                weight = float(normaliser - distances[q, j])
                if weight <= 0:
                    continue
                votes[owner] += weight
                pairs[owner].append((q, int(self._local[neighbour]), weight))
        return votes, pairs

    def _verify(
        self, query: Features, owner: int, pairs: list[tuple[int, int, float]]
    ) -> tuple[float, int]:
        """RANSAC affine fit of the correspondences; the LNBNN weight of the inliers."""
        if len(pairs) < self.options.min_inliers:
            return 0.0, 0
        source = query.points[[p[0] for p in pairs]]
        target = self.features[owner].points[[p[1] for p in pairs]]
        _, mask = cv2.estimateAffine2D(
            source,
            target,
            method=cv2.RANSAC,
            ransacReprojThreshold=self.options.ransac_threshold_px,
            maxIters=500,
            confidence=0.99,
        )
        if mask is None:
            return 0.0, 0
        inlier = mask.ravel().astype(bool)
        count = int(inlier.sum())
        if count < self.options.min_inliers:
            return 0.0, count
        return float(sum(p[2] for p, ok in zip(pairs, inlier, strict=True) if ok)), count

    def rank(
        self,
        query: Features,
        mirrored_query: Features | None = None,
        exclude: str | None = None,
    ) -> list[Candidate]:
        """Rank catalog crops for one query, best first (at most `top_k` per orientation kept).

        `mirrored_query` holds the features of the left-right flipped query; `exclude` names a
        crop to leave out (the query itself when it is in the catalog).
        """
        excluded = self.crop_ids.index(exclude) if exclude in self.crop_ids else None
        best: dict[int, Candidate] = {}
        views = [(query, False)] + ([(mirrored_query, True)] if mirrored_query else [])
        for view, mirrored in views:
            votes, pairs = self._vote(view, excluded)
            shortlist = sorted(votes, key=lambda o: -votes[o])[: self.options.shortlist]
            for owner in shortlist:
                score, inliers = self._verify(view, owner, pairs[owner])
                current = best.get(owner)
                if current is None or score > current.score:
                    best[owner] = Candidate(self.crop_ids[owner], score, inliers, mirrored)
        return sorted(best.values(), key=lambda c: (-c.score, c.crop_id))


def mirrored(image: np.ndarray) -> np.ndarray:
    """The left-right mirror image of a crop."""
    return np.ascontiguousarray(np.asarray(image)[:, ::-1])


def query_features(
    image: np.ndarray, options: IdentifyOptions = IdentifyOptions()
) -> tuple[Features, Features | None]:
    """Features of a crop and (when `options.mirror`) of its mirror image."""
    return (
        extract_features(image, options),
        extract_features(mirrored(image), options) if options.mirror else None,
    )


def match_catalog(
    crop_ids: Sequence[str],
    images: Iterable[np.ndarray],
    options: IdentifyOptions = IdentifyOptions(),
) -> pa.Table:
    """Match every crop against all the others; return MATCHES rows (top_k per crop).

    `proposed` marks matches whose score reaches `options.accept_score`; a person confirms them.
    """
    pictures = list(images)
    features = [extract_features(p, options) for p in pictures]
    catalog = Catalog(crop_ids, features, options)
    rows = []
    for crop_id, picture, own in zip(crop_ids, pictures, features, strict=True):
        mirror = extract_features(mirrored(picture), options) if options.mirror else None
        for rank, candidate in enumerate(
            catalog.rank(own, mirror, exclude=crop_id)[: options.top_k]
        ):
            rows.append(
                {
                    "query_id": crop_id,
                    "candidate_id": candidate.crop_id,
                    "rank": rank + 1,
                    "score": candidate.score,
                    "inliers": candidate.inliers,
                    "mirrored": candidate.mirrored,
                    "proposed": candidate.score >= options.accept_score,
                }
            )
    return pa.Table.from_pylist(rows, schema=MATCHES)


def individuals_from_pairs(
    crop_ids: Sequence[str],
    accepted: Iterable[tuple[str, str]],
    rejected: Iterable[tuple[str, str]] = (),
) -> dict[str, str]:
    """Union-find over accepted pairs: crop id -> individualID ("ind-" + 8 hex digits).

    A rejected pair is never joined directly (a person said no), though both crops may still
    meet through other accepted pairs. The id is a hash of the group's smallest crop id, so it
    is stable while that crop stays in the group. Every crop gets an id (a singleton is an
    individual seen once).
    """
    parent = {c: c for c in crop_ids}

    def find(c: str) -> str:
        while parent[c] != c:
            parent[c] = parent[parent[c]]
            c = parent[c]
        return c

    refused = {frozenset(p) for p in rejected}
    for a, b in accepted:
        if a in parent and b in parent and frozenset((a, b)) not in refused:
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    groups: dict[str, list[str]] = defaultdict(list)
    for c in crop_ids:
        groups[find(c)].append(c)
    out = {}
    for members in groups.values():
        tag = hashlib.sha1(min(members).encode()).hexdigest()[:8]
        for c in members:
            out[c] = f"ind-{tag}"
    return out


def timed_query(catalog: Catalog, image: np.ndarray) -> tuple[list[Candidate], float]:
    """Rank one crop against a catalog; also return the seconds it took (features included)."""
    start = time.perf_counter()
    own, mirror = query_features(image, catalog.options)
    result = catalog.rank(own, mirror)
    return result, time.perf_counter() - start

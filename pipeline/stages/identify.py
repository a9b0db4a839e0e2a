"""Identification stage: which individual is this? HotSpotter-style spot-pattern matching.

Each crop is contrast-normalised (CLAHE) and gives RootSIFT keypoints, from the crop and from a
blurred copy of it (so a sharp and a blurred sighting share keypoints); every descriptor of the
catalog goes into one FLANN KD-tree index built once. A query's descriptors vote for catalog
crops by LNBNN (local naive-Bayes nearest neighbour: how much closer a crop's descriptor is than
the k+1-th neighbour); the best-voted candidates are matched again directly (ratio test) and
verified with a RANSAC affine fit, and a mirrored copy of the query is matched too, so a flipped
picture of the same flank is found. Accepted pairs are joined by union-find into individuals.
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
    `clahe`: clip limit of the contrast normalisation before SIFT (0: none). `blur_copies`:
    Gaussian sigmas (pixels of the resized crop) of blurred copies whose keypoints are added to
    the crop's own, up to `max_keypoints` from each. `rematch_ratio`: Lowe's ratio for the direct
    query-to-candidate matches that join the LNBNN correspondences before verification (0: none).
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
    clahe: float = 2.0
    blur_copies: tuple[float, ...] = (2.0,)
    rematch_ratio: float = 0.8

    def __post_init__(self) -> None:
        if self.knn < 1 or self.shortlist < 1 or self.top_k < 1:
            raise ConfigError("knn, shortlist and top_k must be at least 1")
        if self.crop_side < 32:
            raise ConfigError(f"crop_side {self.crop_side} is too small (at least 32)")
        if any(sigma <= 0 for sigma in self.blur_copies):
            raise ConfigError("blur_copies must be positive sigmas")
        if not 0 <= self.rematch_ratio <= 1 or self.clahe < 0:
            raise ConfigError("rematch_ratio must lie in [0, 1] and clahe must not be negative")


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

    The grey crop is contrast-normalised with CLAHE (faded, dim or unevenly lit coats give
    keypoints too). SIFT runs on it and on each `blur_copies` copy: a blurred sighting's spots
    are blobs, a sharp one's are rings and blobs; the blurred copy's keypoints describe the
    sharp coat the way a blurred picture of it looks. RootSIFT: L1-normalise each SIFT
    descriptor and take the square root, so Euclidean distance between descriptors becomes the
    Hellinger kernel (Arandjelović & Zisserman 2012). A crop without texture gives zero
    keypoints, not an error.
    """
    grey = _grey(image, options.crop_side)
    if options.clahe > 0:
        grey = cv2.createCLAHE(clipLimit=options.clahe, tileGridSize=(4, 4)).apply(grey)
    sift = cv2.SIFT.create(nfeatures=options.max_keypoints)
    points, descriptors = [], []
    for sigma in (0.0, *options.blur_copies):
        picture = grey if sigma == 0 else cv2.GaussianBlur(grey, (0, 0), sigma)
        keypoints, found = sift.detectAndCompute(picture, None)
        if found is None or not keypoints:
            continue
        raw = np.asarray(found, dtype=np.float32)
        descriptors.append(np.sqrt(raw / (raw.sum(axis=1, keepdims=True) + 1e-7)))
        points.append(np.array([k.pt for k in keypoints], dtype=np.float32))
    if not descriptors:
        return Features(np.empty((0, 2), np.float32), np.empty((0, 128), np.float32))
    return Features(np.concatenate(points), np.concatenate(descriptors).astype(np.float32))


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
        self._position = {c: i for i, c in enumerate(self.crop_ids)}
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

    def _search(self, query: Features) -> tuple[np.ndarray, np.ndarray]:
        """The knn+1 nearest catalog descriptors of every query descriptor and their distances."""
        assert self._index is not None
        found, dist2 = self._index.knnSearch(
            query.descriptors, self.options.knn + 1, params={"checks": self.options.flann_checks}
        )
        return found, np.sqrt(np.maximum(dist2, 0.0))

    def _vote(
        self, query: Features, exclude: int | None
    ) -> tuple[dict[int, float], dict[int, list[tuple[int, int, float]]], np.ndarray]:
        """LNBNN votes per crop, the (query kp, crop kp, weight) correspondences behind them, and
        every query descriptor's LNBNN normaliser (distance of its knn+1-th neighbour)."""
        votes: dict[int, float] = defaultdict(float)
        pairs: dict[int, list[tuple[int, int, float]]] = defaultdict(list)
        if self._index is None or len(query.descriptors) == 0:
            return votes, pairs, np.empty(0, np.float32)
        found, distances = self._search(query)
        k = self.options.knn + 1
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
        return votes, pairs, distances[:, -1].astype(np.float32)

    def _rematch(
        self, query: Features, owners: list[int], normaliser: np.ndarray
    ) -> dict[int, list[tuple[int, int, float]]]:
        """Direct matches of the query against each shortlisted crop (Lowe's ratio test), weighted
        by LNBNN against the whole catalog's normaliser."""
        out: dict[int, list[tuple[int, int, float]]] = {}
        ratio = self.options.rematch_ratio
        if ratio <= 0 or not owners or len(query.descriptors) == 0:
            return out
        blocks = [self.features[o].descriptors for o in owners]
        stacked = np.concatenate(blocks)
        q = query.descriptors
        d2 = (q * q).sum(1)[:, None] + (stacked * stacked).sum(1)[None, :] - 2.0 * (q @ stacked.T)
        dist = np.sqrt(np.maximum(d2, 0.0))
        start = 0
        for owner, block in zip(owners, blocks, strict=True):
            part = dist[:, start : start + len(block)]
            start += len(block)
            if part.shape[1] < 2:
                continue
            two = np.argpartition(part, 1, axis=1)[:, :2]
            rows = np.arange(len(part))
            first, second = part[rows, two[:, 0]], part[rows, two[:, 1]]
            swap = first > second
            best = np.where(swap, two[:, 1], two[:, 0])
            d1, d2nd = np.minimum(first, second), np.maximum(first, second)
            keep = np.flatnonzero(d1 < ratio * d2nd)
            out[owner] = [
                (int(i), int(best[i]), float(max(normaliser[i] - d1[i], 0.0))) for i in keep
            ]
        return out

    def _merge(
        self,
        query: Features,
        owner: int,
        *groups: list[tuple[int, int, float]],
    ) -> list[tuple[int, int, float]]:
        """One correspondence per pair of places (2-pixel cells): the crop's keypoint and its
        blurred copy's at one spot would otherwise count as two inliers; the heavier is kept."""
        target = self.features[owner].points
        kept: dict[tuple[int, int, int, int], tuple[int, int, float]] = {}
        for group in groups:
            for a, b, w in group:
                qx, qy = query.points[a]
                cx, cy = target[b]
                cell = (int(qx // 2), int(qy // 2), int(cx // 2), int(cy // 2))
                if cell not in kept or w > kept[cell][2]:
                    kept[cell] = (a, b, w)
        return list(kept.values())

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
        """Rank catalog crops for one query, best first (at most `shortlist` per orientation).

        `mirrored_query` holds the features of the left-right flipped query; `exclude` names a
        crop to leave out (the query itself when it is in the catalog). Verified score first,
        LNBNN votes break ties (crops nothing verified stay ordered by their evidence).
        """
        excluded = self._position.get(exclude) if exclude is not None else None
        best: dict[int, Candidate] = {}
        evidence: dict[int, float] = defaultdict(float)
        views = [(query, False)] + ([(mirrored_query, True)] if mirrored_query else [])
        for view, mirrored in views:
            votes, pairs, normaliser = self._vote(view, excluded)
            shortlist = sorted(votes, key=lambda o: (-votes[o], o))[: self.options.shortlist]
            direct = self._rematch(view, shortlist, normaliser)
            for owner in shortlist:
                correspondences = self._merge(view, owner, pairs[owner], direct.get(owner, []))
                score, inliers = self._verify(view, owner, correspondences)
                evidence[owner] = max(evidence[owner], votes[owner])
                current = best.get(owner)
                if current is None or score > current.score:
                    best[owner] = Candidate(self.crop_ids[owner], score, inliers, mirrored)
        return sorted(
            best.values(),
            key=lambda c: (-c.score, -evidence[self._position[c.crop_id]], c.crop_id),
        )


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

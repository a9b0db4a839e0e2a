"""Identification benchmark: rank-1/rank-5 accuracy and query time on generated rosette coats.

    python -m bench.identify_bench [--individuals 60] [--sightings 5] [--catalog 1000]
                                   [--seed 1] [--out FILE]

It runs twice: standard conditions, then `hard` ones (wider warps, more blur and occlusion,
reported under "hard"). Every sighting of every individual queries the catalog of all other
sightings (a fifth of the queries mirrored); a query is right at rank k when one of its k
best-ranked *individuals* is its own. Then distractor sightings pad the catalog to
`--catalog` crops, the index is built once and single-query time is measured. Results go to
bench/results/identify.json (written atomically). `--seed` draws other sightings of the same
coats (check a tuned parameter on a second seed, `--out` elsewhere).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np

from bench.patterns import coat, sighting
from pipeline.stages.identify import (
    Catalog,
    Features,
    IdentifyOptions,
    extract_features,
    timed_query,
)
from pipeline.store.store import atomic_write_text

RESULTS = Path(__file__).resolve().parent / "results" / "identify.json"


def _individual_ranks(candidates: list, owner_of: dict[str, int]) -> list[int]:
    """Individuals in the order their best crop is ranked."""
    order: list[int] = []
    for candidate in candidates:
        who = owner_of[candidate.crop_id]
        if who not in order:
            order.append(who)
    return order


def run(individuals: int, sightings: int, catalog_size: int, seed: int, hard: bool = False) -> dict:
    options = IdentifyOptions()
    rng = np.random.default_rng(seed)
    crop_ids: list[str] = []
    images: list[np.ndarray] = []
    owner_of: dict[str, int] = {}
    mirrored_ids: set[str] = set()
    for who in range(individuals):
        pattern = coat(who)
        for view in range(sightings):
            mirror = bool(rng.random() < 0.2)
            crop_id = f"i{who:03d}-s{view}"
            images.append(sighting(pattern, seed * 100_000 + who * 100 + view, mirror, hard))
            crop_ids.append(crop_id)
            owner_of[crop_id] = who
            if mirror:
                mirrored_ids.add(crop_id)
    start = time.perf_counter()
    features = [extract_features(image, options) for image in images]
    feature_s = (time.perf_counter() - start) / len(images)
    catalog = Catalog(crop_ids, features, options)
    hits = {1: 0, 5: 0}
    mirrored_hits = 0
    misses: list[str] = []
    genuine_accepted = impostors_accepted = 0
    for crop_id, image, own in zip(crop_ids, images, features, strict=True):
        flipped = extract_features(np.ascontiguousarray(image[:, ::-1]), options)
        ranked = catalog.rank(own, flipped, exclude=crop_id)
        order = _individual_ranks(ranked, owner_of)
        for k in hits:
            hits[k] += owner_of[crop_id] in order[:k]
        mirrored_hits += crop_id in mirrored_ids and order[:1] == [owner_of[crop_id]]
        if order[:1] != [owner_of[crop_id]]:
            misses.append(crop_id)
        accepted = [c for c in ranked if c.score >= options.accept_score]
        genuine_accepted += any(owner_of[c.crop_id] == owner_of[crop_id] for c in accepted)
        impostors_accepted += sum(owner_of[c.crop_id] != owner_of[crop_id] for c in accepted)
    queries = len(crop_ids)

    # Speed: pad the catalog with distractor individuals, build the index once, time queries.
    extra_ids: list[str] = []
    extra_features: list[Features] = []
    who = individuals
    while len(crop_ids) + len(extra_ids) < catalog_size:
        pattern = coat(who)
        for view in range(2):
            extra_ids.append(f"d{who:04d}-s{view}")
            extra_features.append(
                extract_features(sighting(pattern, 7_000_000 + who * 10 + view), options)
            )
        who += 1
    all_ids = (crop_ids + extra_ids)[:catalog_size]
    all_features = (features + extra_features)[:catalog_size]
    start = time.perf_counter()
    big = Catalog(all_ids, all_features, options)
    build_s = time.perf_counter() - start
    owner_big = {**owner_of, **{c: -1 - i for i, c in enumerate(extra_ids)}}
    times, big_hits = [], 0
    probes = 20
    for who in range(min(probes, individuals)):
        probe = sighting(coat(who), 9_000_000 + who, mirror=who % 4 == 0, hard=hard)
        ranked, seconds = timed_query(big, probe)
        times.append(seconds)
        big_hits += _individual_ranks(ranked, owner_big)[:1] == [who]
    return {
        "conditions": "hard" if hard else "standard",
        "seed": seed,
        "individuals": individuals,
        "sightings_per_individual": sightings,
        "queries": queries,
        "mirrored_queries": len(mirrored_ids),
        "rank1": hits[1] / queries,
        "rank5": hits[5] / queries,
        "mirrored_rank1": mirrored_hits / max(1, len(mirrored_ids)),
        "rank1_misses": misses,
        "queries_with_own_match_proposed": genuine_accepted / queries,
        "impostor_matches_proposed": impostors_accepted,
        "feature_seconds_per_crop": round(feature_s, 4),
        "speed": {
            "catalog_crops": len(all_ids),
            "catalog_descriptors": int(sum(len(f.descriptors) for f in all_features)),
            "index_build_seconds": round(build_s, 3),
            "query_seconds_median": round(statistics.median(times), 3),
            "query_seconds_max": round(max(times), 3),
            "probe_rank1": big_hits / len(times),
            "probes": len(times),
        },
        "options": options.__dict__,
        "machine": {
            "python": platform.python_version(),
            "opencv": cv2.__version__,
            "cpu_threads": cv2.getNumThreads(),
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--individuals", type=int, default=60)
    parser.add_argument("--sightings", type=int, default=5)
    parser.add_argument("--catalog", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1, help="sightings' seed (coats stay the same)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    result = run(args.individuals, args.sightings, args.catalog, args.seed)
    result["hard"] = run(args.individuals, args.sightings, args.catalog, args.seed, hard=True)
    atomic_write_text(json.dumps(result, indent=2) + "\n", args.out)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

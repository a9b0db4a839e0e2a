"""Identification: the right individual comes first among generated coats, mirrored views too."""

from __future__ import annotations

import numpy as np
import pytest

from bench.patterns import coat, sighting
from pipeline.errors import ConfigError
from pipeline.stages.identify import (
    Catalog,
    IdentifyOptions,
    extract_features,
    individuals_from_pairs,
    match_catalog,
    query_features,
)

INDIVIDUALS = 8


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    ids, features = [], []
    for who in range(INDIVIDUALS):
        for view in range(2):
            ids.append(f"ind{who}-view{view}")
            features.append(extract_features(sighting(coat(who), 100 * who + view)))
    return Catalog(ids, features)


def _best_individual(catalog: Catalog, image: np.ndarray) -> tuple[str, float, bool]:
    own, mirror = query_features(image, catalog.options)
    best = catalog.rank(own, mirror)[0]
    return best.crop_id.split("-")[0], best.score, best.mirrored


def test_new_sightings_find_their_individual_first(catalog: Catalog) -> None:
    for who in range(INDIVIDUALS):
        found, score, _ = _best_individual(catalog, sighting(coat(who), 5000 + who))
        assert found == f"ind{who}"
        assert score >= catalog.options.accept_score


def test_a_mirrored_sighting_is_found_through_the_mirrored_query(catalog: Catalog) -> None:
    image = sighting(coat(3), 7777, mirror=True)
    found, score, mirrored = _best_individual(catalog, image)
    assert (found, mirrored) == ("ind3", True) and score >= catalog.options.accept_score
    # Without the mirrored query the same picture is not verified as ind3.
    plain = catalog.rank(extract_features(image))
    assert not any(c.crop_id.startswith("ind3") and c.score >= 4.0 for c in plain)


def test_an_individual_not_in_the_catalog_gets_no_confident_match(catalog: Catalog) -> None:
    own, mirror = query_features(sighting(coat(999), 1))
    ranked = catalog.rank(own, mirror)
    assert not ranked or ranked[0].score < catalog.options.accept_score


def test_a_blank_crop_has_no_keypoints_and_no_matches(catalog: Catalog) -> None:
    blank = np.full((200, 200, 3), 128, np.uint8)
    assert len(extract_features(blank).descriptors) == 0
    assert catalog.rank(extract_features(blank)) == []


def test_match_catalog_proposes_same_individual_pairs_only() -> None:
    ids = ["a1", "a2", "b1", "b2"]
    images = [
        sighting(coat(1), 1),
        sighting(coat(1), 2),
        sighting(coat(2), 3),
        sighting(coat(2), 4),
    ]
    matches = match_catalog(ids, images, IdentifyOptions(top_k=2)).to_pylist()
    proposed = {frozenset((m["query_id"], m["candidate_id"])) for m in matches if m["proposed"]}
    assert proposed == {frozenset(("a1", "a2")), frozenset(("b1", "b2"))}
    assert all(m["query_id"] != m["candidate_id"] for m in matches)


def test_union_find_joins_chains_and_respects_rejections() -> None:
    ids = ["a", "b", "c", "d", "e"]
    groups = individuals_from_pairs(
        ids, [("a", "b"), ("b", "c"), ("d", "e")], rejected=[("d", "e")]
    )
    assert groups["a"] == groups["b"] == groups["c"]
    assert len({groups["a"], groups["d"], groups["e"]}) == 3
    # Same groups, same ids, whatever the order the pairs come in.
    assert groups == individuals_from_pairs(ids, [("c", "b"), ("b", "a"), ("e", "d")], [("e", "d")])


def test_options_refuse_nonsense() -> None:
    with pytest.raises(ConfigError):
        IdentifyOptions(knn=0)
    with pytest.raises(ConfigError):
        Catalog(["x", "x"], [extract_features(sighting(coat(1), 1))] * 2)

"""The frame-score aggregations of bench/felid_aggregation.py on hand-made view scores, and its
grouped selection and bootstrap on hand-made frames (no model, no data: milliseconds)."""

from __future__ import annotations

import numpy as np
import pytest

from bench import felid_aggregation as fa

FELID = list(fa.FELID_CLASSES)


def _views(
    rows: list[tuple[int, str, tuple[float, float, float, float], float, float]],
) -> fa.Views:
    """Views from (frame, type, box, snow-leopard probability, other felid probability):
    the rest of each view's probability sits on class 0."""
    v = fa.Views.__new__(fa.Views)
    prob = np.zeros((len(rows), 1000))
    for i, (_, _, _, p289, other) in enumerate(rows):
        prob[i, fa.SNOW_LEOPARD] = p289
        prob[i, 281] = other
        prob[i, 0] = 1.0 - p289 - other
    v.n = max(r[0] for r in rows) + 1
    v.frame = np.array([r[0] for r in rows])
    v.type = np.array([r[1] for r in rows])
    v.box = np.array([r[2] for r in rows], dtype=np.float64)
    v.prob = prob
    v.logits = np.log(np.clip(prob, 1e-12, None))
    v.score = {"felid": prob[:, FELID].sum(axis=1), "p289": prob[:, fa.SNOW_LEOPARD]}
    v.ok = np.ones(v.n, bool)
    return v


WHOLE = (0.0, 0.0, 1.0, 1.0)
LEFT, NEXT_TO_LEFT, RIGHT = (0.0, 0.0, 0.4, 0.5), (0.3, 0.0, 0.4, 0.5), (0.6, 0.5, 0.4, 0.5)


@pytest.fixture
def one_frame() -> fa.Views:
    return _views(
        [
            (0, "whole960", WHOLE, 0.1, 0.15),  # felid mass 0.25
            (0, "4x3", LEFT, 0.8, 0.0),
            (0, "4x3", NEXT_TO_LEFT, 0.2, 0.0),  # overlaps the best tile
            (0, "4x3", RIGHT, 0.7, 0.0),  # does not
        ]
    )


def test_reducers_on_hand_made_scores(one_frame: fa.Views) -> None:
    rows = np.arange(4)
    assert fa.REDUCERS["max"](one_frame, rows, "p289") == pytest.approx(0.8)
    assert fa.REDUCERS["mean"](one_frame, rows, "p289") == pytest.approx(
        (0.1 + 0.8 + 0.2 + 0.7) / 4
    )
    assert fa.REDUCERS["noisy_or"](one_frame, rows, "p289") == pytest.approx(
        1 - 0.9 * 0.2 * 0.8 * 0.3
    )
    # The best tile agrees with the best view overlapping it (the whole view, 0.1 < 0.2: the
    # neighbouring tile), not with the far tile that scores 0.7.
    assert fa.REDUCERS["top2_mean"](one_frame, rows, "p289") == pytest.approx(0.5)
    assert fa.REDUCERS["top2_geo"](one_frame, rows, "p289") == pytest.approx(0.4)
    # Gated by the whole view's felid mass 0.25.
    assert fa.REDUCERS["gate_whole"](one_frame, rows, "p289") == pytest.approx(0.8 * 0.25)
    assert fa.REDUCERS["gate_whole_sqrt"](one_frame, rows, "p289") == pytest.approx(0.8 * 0.5)
    # Class-wise maximum, then the felid sum: 0.8 (class 289, a tile) + 0.15 (281, the whole).
    assert fa.REDUCERS["class_max"](one_frame, rows, "felid") == pytest.approx(0.95)
    assert fa.REDUCERS["max"](one_frame, rows, "felid") == pytest.approx(0.8)


def test_logit_mean_averages_logits_before_the_softmax(one_frame: fa.Views) -> None:
    rows = np.arange(4)
    mean = one_frame.logits.mean(axis=0)
    expected = np.exp(mean - mean.max())
    expected /= expected.sum()
    got = fa.REDUCERS["logit_mean"](one_frame, rows, "p289")
    assert got == pytest.approx(expected[fa.SNOW_LEOPARD])
    assert got < fa.REDUCERS["mean"](one_frame, rows, "p289")  # a geometric pooling


def test_fixed_scores_cover_every_view_choice_and_keep_frames_apart() -> None:
    v = _views(
        [
            (0, "whole_mode", WHOLE, 0.9, 0.0),
            (0, "whole960", WHOLE, 0.5, 0.0),
            (0, "4x3", LEFT, 0.3, 0.0),
            (1, "whole_mode", WHOLE, 0.05, 0.0),
            (1, "whole960", WHOLE, 0.02, 0.0),
            (1, "4x3", LEFT, 0.6, 0.0),
        ]
    )
    scores = fa.fixed_scores(v)
    np.testing.assert_allclose(scores["p289|whole (mode)|max"], [0.9, 0.05])
    np.testing.assert_allclose(scores["p289|4x3 (default)|max"], [0.5, 0.6])
    np.testing.assert_allclose(scores["p289|2x2|max"], [0.5, 0.02])  # its whole view only
    assert np.isnan(scores["p289|3x2 @480|max"]).all()  # no such views: no score
    assert "p289|whole (mode)|mean" not in scores  # one view: nothing to aggregate


def test_recall_at_counts_the_negatives_it_allows() -> None:
    truth = np.array([True] * 4 + [False] * 200)
    scores = np.concatenate([[0.9, 0.8, 0.5, 0.1], np.linspace(0.0, 0.6, 200)])
    recall, allowed, threshold = fa._recall_at(truth, scores, 0.01)
    assert allowed == 2  # 1% of 200 negatives
    assert threshold == pytest.approx(np.linspace(0.0, 0.6, 200)[-3])
    assert recall == 0.5  # 0.9 and 0.8 only: 0.5 is under the third-best negative


def test_grouped_selection_scores_held_out_groups_with_training_thresholds() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(6), 20)
    truth = rng.random(120) < 0.4
    noise = rng.random(120)
    fixed = {
        f"p289|{fa.BASELINE}|max": noise,  # no skill
        "p289|4x3 (default)|max": truth + 0.1 * noise,  # perfect
        "p289|2x2|mean": 1.0 - truth + 0.1 * noise,  # backwards
    }
    km = np.column_stack([noise] * len(fa.KIND_TYPES))
    out = fa.grouped_selection(fixed, km, truth, groups.astype(str), "p289")
    assert out["groups"] == 6
    assert out["chosen_aggregations"] == {"p289|4x3 (default)|max": 6}
    # The perfect score's threshold from the other groups' negatives (under 100 of them: 1%
    # allows none above, so the threshold is their highest) flags every held-out cat, and the
    # held-out negatives above the other groups' highest negative.
    perfect = fixed["p289|4x3 (default)|max"]
    above = sum(
        int((perfect[(groups == g) & ~truth] > perfect[(groups != g) & ~truth].max()).sum())
        for g in range(6)
    )
    assert out["chosen"] == {
        "cats_flagged": int(truth.sum()),
        "cats": int(truth.sum()),
        "recall": 1.0,
        "negatives_flagged": above,
        "negatives": int((~truth).sum()),
    }
    assert out["baseline"]["recall"] < 0.5
    assert out["ratio"] == pytest.approx(1.0 / out["baseline"]["recall"], abs=1e-3)


def test_bootstrap_ratio_of_a_copy_of_the_baseline_is_one() -> None:
    rng = np.random.default_rng(1)
    groups = np.repeat(np.arange(10), 10).astype(str)
    truth = rng.random(100) < 0.3
    base = truth * 0.5 + rng.random(100)
    out = fa.bootstrap_ratio({"same": base.copy()}, base, truth, groups, draws=50, seed=0)
    assert out["same"]["median"] == 1.0 and out["same"]["p05"] == 1.0
    assert out["same"]["draws"] > 0

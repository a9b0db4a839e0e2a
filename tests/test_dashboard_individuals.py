"""The individuals section: distinct individuals per hexagon, match review, crop pictures."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dashboard import Settings, create_app
from dashboard.context import build_context
from dashboard.data.individuals import individuals_per_hexagon, review_queue
from dashboard.data.store import Store
from dashboard.views.individuals import decide_match, show_pair
from pipeline.runs.demo import DemoOptions, build_demo_survey
from pipeline.schema import INDIVIDUALS, LOCALIZATIONS, MATCHES
from pipeline.store.store import StorePaths, atomic_write_parquet


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str], str]:
    """A small demo store plus identify output: three frames of one hexagon, two individuals."""
    out = tmp_path_factory.mktemp("individuals")
    build_demo_survey(out, DemoOptions(n_stations=3, n_years=1))
    paths = StorePaths(out)
    detections = pq.read_table(paths.table("detections")).to_pylist()
    cell = detections[0]["h3_r7"]
    ids = [d["image_id"] for d in detections if d["h3_r7"] == cell][:3]
    assert len(ids) == 3
    who = {ids[0]: "ind-aaaaaaaa", ids[1]: "ind-aaaaaaaa", ids[2]: "ind-bbbbbbbb"}
    atomic_write_parquet(
        pa.Table.from_pylist(
            [
                {"image_id": i, "individualID": w, "sightings": 2 if w.endswith("a") else 1,
                 "status": "proposed"}
                for i, w in who.items()
            ],
            schema=INDIVIDUALS,
        ),
        paths.table("individuals"),
    )  # fmt: skip
    crops = out / "localizations" / "crops"
    crops.mkdir(parents=True)
    localizations = []
    for i in ids:
        (crops / f"{i}.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
        localizations.append(
            {"image_id": i, "run_id": "r1", "method": "gradcam", "target": "imagenet:289",
             "crop_path": f"localizations/crops/{i}.jpg",
             "heatmap_path": f"localizations/heatmaps/{i}.png"}
        )  # fmt: skip
    atomic_write_parquet(
        pa.Table.from_pylist(localizations, schema=LOCALIZATIONS), paths.table("localizations")
    )
    match = {"rank": 1, "score": 9.5, "inliers": 12, "mirrored": False, "proposed": True}
    atomic_write_parquet(
        pa.Table.from_pylist(
            [
                {"query_id": ids[0], "candidate_id": ids[1], **match},
                {"query_id": ids[1], "candidate_id": ids[0], **match},
                {"query_id": ids[2], "candidate_id": ids[0], **match, "proposed": False},
            ],
            schema=MATCHES,
        ),
        paths.table("matches"),
    )
    return out, ids, cell


def test_distinct_individuals_per_hexagon_is_the_minimum_known_alive(
    store: tuple[Path, list[str], str],
) -> None:
    out, _, cell = store
    rows = individuals_per_hexagon(Store(out), 7)
    assert {"cell": cell, "individuals": 2, "sightings": 3} in rows
    assert individuals_per_hexagon(Store(out / "nowhere")) == []


def test_review_queue_lists_each_proposed_pair_once_and_records_decisions(
    store: tuple[Path, list[str], str],
) -> None:
    out, ids, _ = store
    queue = review_queue(Store(out))
    assert [(q["query_id"], q["candidate_id"]) for q in queue] == [tuple(sorted(ids[:2]))]
    assert queue[0]["decision"] is None
    pair = f"{queue[0]['query_id']}|{queue[0]['candidate_id']}"
    app = create_app(Settings(data_dir=out, tiles="none"))
    with app.server.test_request_context("/"):
        assert "reject" in decide_match(Store(out), pair, "reject")
    assert review_queue(Store(out))[0]["decision"] == "reject"
    ctx = build_context(Settings(data_dir=out, tiles="none"))
    query_url, candidate_url = show_pair(ctx, pair)
    assert query_url is not None and query_url.endswith(f"/crops/{queue[0]['query_id']}.jpg")

    client = app.server.test_client()
    assert client.get(query_url).status_code == 200
    assert client.get("/localization-pictures/../uncia.duckdb").status_code == 404

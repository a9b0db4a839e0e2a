"""The dashboard lets in only who belongs and leaks nothing: authentication, roles, thumbnail
confinement, hostile control values against parameterized SQL, and error bodies (server
start-up, workers and the callback cache: test_dashboard_server.py).

Hypothesis feeds hostile strings and values to every callback and the thumbnail route; the store
file must come out byte-identical with the same row counts.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from dash import Input, Output
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image
from werkzeug.exceptions import Forbidden

from dashboard import Settings, create_app
from dashboard.context import DashboardContext, build_context
from dashboard.serving.auth import (
    Role,
    User,
    hash_password,
    load_users,
    require_role,
    verify_password,
)
from dashboard.views import common
from dashboard.views import hotspots as callbacks
from pipeline.errors import ConfigError
from pipeline.runs.demo import DemoOptions
from pipeline.schema import RUN_TABLES
from pipeline.store import store
from tests.helpers import (
    PASSWORDS,
    announced_port,
    basic_auth,
    dash_payload,
    free_port,
    listening_addresses,
    read_callbacks,
)

pytestmark = pytest.mark.filterwarnings("ignore:(?s).*DataTable will be removed:DeprecationWarning")

ROOT = Path(__file__).resolve().parents[1]
SQL_ATTACKS = [
    "'; DROP TABLE bursts; --",
    "' OR '1'='1",
    "2024-01-01'; INSERT INTO runs SELECT * FROM runs; --",
    "\"; ATTACH '/tmp/x.duckdb' AS x; --",
    'h3_r6" = h3_r6 OR 1=1 --',
    "1; COPY deployments TO '/tmp/leak.csv'",
    "$threshold",
    "../../etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "\x00",
    "8a2a1072b59ffff' UNION SELECT file_path, 1, 1, 1, 1, 1, 1, 1 FROM images --",
    "0.5 OR 1=1",
    "NaN",
    "inf",
    "-1e309",
    "9" * 400,
]
HOSTILE = st.one_of(
    st.sampled_from(SQL_ATTACKS),
    st.text(max_size=60),
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.lists(st.sampled_from(SQL_ATTACKS), max_size=3),
    st.dictionaries(st.sampled_from(["a", "points", "row_id"]), st.sampled_from(SQL_ATTACKS)),
)
CONTROL_NAMES = (
    "resolution",
    "start_date",
    "end_date",
    "season",
    "month_start",
    "month_end",
    "threshold",
)
VALID: dict[str, list[Any]] = {
    "resolution": [5, 6, 9],
    "start_date": [None, "2024-01-01"],
    "end_date": [None, "2026-12-31T00:00:00"],
    "season": ["all", "winter", "custom"],
    "month_start": [1, 11],
    "month_end": [3, 12],
    "threshold": [0.0, 0.5, 1],
}
# Mostly valid controls with some hostile ones, so hostile values reach the SQL, not only the
# parser that refuses them.
CONTROLS = st.fixed_dictionaries(
    {
        name: st.one_of(st.sampled_from(VALID[name]), st.sampled_from(VALID[name]), HOSTILE)
        for name in CONTROL_NAMES
    }
)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

DEMO_OPTIONS = DemoOptions(n_stations=8, n_years=1, seed=5)  # the module's demo_dir (conftest.py)


def _counts(path: Path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return {t: con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in RUN_TABLES}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- binding ------------------------------------------------------------------------------


def test_uncia_serve_end_to_end_asks_for_a_password(demo_dir: Path, users_file: Path) -> None:
    """The real command: loopback by default, waitress, 401 without credentials, 200 with."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cli.main",
            "serve",
            "--data",
            str(demo_dir),
            "--port",
            str(free_port()),
            "--tiles",
            "none",
            "--auth-file",
            str(users_file),
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = announced_port(proc, r"users file; waitress server")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass
        listening = listening_addresses(port)
        assert listening == {"127.0.0.1"}, listening
        base = f"http://127.0.0.1:{port}/"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(base, timeout=10)
        assert refused.value.code == 401
        request = urllib.request.Request(base, headers=basic_auth("bob", PASSWORDS["bob"]))
        with urllib.request.urlopen(request, timeout=10) as ok:
            assert ok.status == 200 and "Server" not in ok.headers
    finally:
        proc.terminate()
        proc.wait(timeout=60)


# --- passwords and the users file ----------------------------------------------------------


def test_password_hashes_are_salted_scrypt_and_verify() -> None:
    first, second = hash_password("s3cret-pass"), hash_password("s3cret-pass")
    assert first.startswith("scrypt$16384$8$1$") and first != second
    assert verify_password("s3cret-pass", first) and verify_password("s3cret-pass", second)
    assert not verify_password("s3cret-pasS", first)
    assert not verify_password("s3cret-pass", "scrypt$16384$8$1$bad$hash")
    assert not verify_password("s3cret-pass", "plain")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ('[users.eve]\npassword = "hunter22"\nrole = "viewer"\n', "hash"),
        ('[users.eve]\npassword = "scrypt$1$1$1$a$b"\nrole = "admin"\n', "viewer or reviewer"),
        ("[other]\n", "no [users.NAME]"),
        ("[users.eve\n", "cannot read"),
    ],
)
def test_malformed_users_files_are_refused(tmp_path: Path, entry: str, message: str) -> None:
    path = tmp_path / "users.toml"
    path.write_text(entry)
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_users(path)


def test_hash_password_command_prints_an_entry_that_loads(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "hash-password",
            "--user",
            "carol",
            "--role",
            "reviewer",
            "--password-stdin",
        ],
        input="a long enough password\n",
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    ).stdout
    assert "a long enough password" not in out
    path = tmp_path / "users.toml"
    path.write_text(out)
    entry = load_users(path)["carol"]
    assert entry.role is Role.REVIEWER
    assert verify_password("a long enough password", entry.password_hash)


# --- every route needs credentials ---------------------------------------------------------

ROUTES = [
    ("GET", "/"),
    ("GET", "/some/page"),
    ("GET", "/_dash-layout"),
    ("GET", "/_dash-dependencies"),
    ("GET", "/_dash-component-suites/dash/deps/react@18.3.1.min.js"),
    ("GET", "/_favicon.ico"),
    ("GET", "/assets/style.css"),
    ("GET", "/thumbnail/abc"),
    ("POST", "/_dash-update-component"),
]


@pytest.fixture(scope="module")
def auth_client(demo_dir: Path, users_file: Path) -> Any:
    return create_app(Settings(data_dir=demo_dir, tiles="none", auth_file=users_file)).server


@pytest.mark.parametrize(("method", "path"), ROUTES)
def test_every_route_needs_credentials(auth_client: Any, method: str, path: str) -> None:
    client = auth_client.test_client()
    for headers in (
        {},
        basic_auth("alice", "wrong password"),
        basic_auth("mallory", PASSWORDS["alice"]),
        {"Authorization": "Bearer abc"},
        {"X-Forwarded-User": "alice"},  # not configured: ignored
    ):
        response = client.open(path, method=method, headers=headers, json={})
        assert response.status_code == 401, (path, headers)
        assert response.headers["WWW-Authenticate"].startswith("Basic realm=")
        assert response.data == b"authentication required"
    ok = client.open(path, method=method, headers=basic_auth("bob", PASSWORDS["bob"]), json={})
    assert ok.status_code != 401


def test_security_headers_on_every_answer(auth_client: Any) -> None:
    client = auth_client.test_client()
    for response in (client.get("/"), client.get("/", headers=basic_auth("bob", PASSWORDS["bob"]))):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Referrer-Policy"] == "no-referrer"
        assert response.headers["Cache-Control"] == "no-store"


def test_proxy_header_is_believed_only_when_configured_and_from_the_proxy(
    demo_dir: Path, users_file: Path
) -> None:
    app = create_app(
        Settings(
            data_dir=demo_dir,
            tiles="none",
            auth_file=users_file,
            trusted_user_header="X-Forwarded-User",
        )
    )
    client = app.server.test_client()
    user_of = _whoami(app)
    assert client.get("/", headers={"X-Forwarded-User": "dana"}).status_code == 200
    assert user_of(client, {"X-Forwarded-User": "dana"}) == "dana:viewer"
    assert user_of(client, {"X-Forwarded-User": "alice"}) == "alice:reviewer"  # role from file
    far = {"REMOTE_ADDR": "10.1.2.3"}  # not the proxy: the header means nothing
    response = client.get("/", headers={"X-Forwarded-User": "alice"}, environ_base=far)
    assert response.status_code == 401
    basic = client.get("/", headers=basic_auth("bob", PASSWORDS["bob"]), environ_base=far)
    assert basic.status_code == 200  # the users file still works


def _whoami(app: Any) -> Any:
    from dashboard.serving.auth import current_user

    def whoami() -> str:
        user = current_user()
        return f"{user.name}:{user.role.value}" if user else "nobody"

    app.server.add_url_rule("/whoami-test", "whoami_test", whoami)

    def user_of(client: Any, headers: dict[str, str]) -> str:
        return client.get("/whoami-test", headers=headers).get_data(as_text=True)

    return user_of


# --- roles: only reviewers write -----------------------------------------------------------


def _with_write_callback(app: Any) -> list[Any]:
    """Register a write callback the way a review page would; returns the values it wrote."""
    written: list[Any] = []

    @require_role("reviewer")
    def record_review(n_clicks: Any) -> str:
        written.append(n_clicks)
        return "saved"

    app.callback(Output("review-status", "children"), Input("review-save", "n_clicks"))(
        record_review
    )
    return written


def _write_payload() -> dict[str, Any]:
    return {
        "output": "review-status.children",
        "outputs": {"id": "review-status", "property": "children"},
        "inputs": [{"id": "review-save", "property": "n_clicks", "value": 1}],
        "changedPropIds": ["review-save.n_clicks"],
        "state": [],
    }


def test_only_reviewers_may_run_write_callbacks(demo_dir: Path, users_file: Path) -> None:
    app = create_app(Settings(data_dir=demo_dir, tiles="none", auth_file=users_file))
    written = _with_write_callback(app)
    client = app.server.test_client()
    url = "/_dash-update-component"
    refused = client.post(url, json=_write_payload(), headers=basic_auth("bob", PASSWORDS["bob"]))
    assert refused.status_code == 403 and written == []
    saved = client.post(url, json=_write_payload(), headers=basic_auth("alice", PASSWORDS["alice"]))
    assert saved.status_code == 200 and b"saved" in saved.data and written == [1]


def test_without_auth_only_a_loopback_dashboard_may_write(demo_dir: Path) -> None:
    local = create_app(Settings(data_dir=demo_dir, tiles="none"))
    written = _with_write_callback(local)
    assert (
        local.server.test_client()
        .post("/_dash-update-component", json=_write_payload())
        .status_code
        == 200
    )
    exposed = create_app(Settings(data_dir=demo_dir, tiles="none", host="0.0.0.0"))
    exposed_written = _with_write_callback(exposed)
    response = exposed.server.test_client().post("/_dash-update-component", json=_write_payload())
    assert response.status_code == 403 and written == [1] and exposed_written == []


def test_require_role_refuses_outside_a_request_and_ranks_roles() -> None:
    guarded = require_role(Role.REVIEWER)(lambda: "written")
    with pytest.raises(Forbidden):
        guarded()
    assert User("r", Role.REVIEWER).may("viewer") and not User("v", Role.VIEWER).may("reviewer")


# --- thumbnails only from under the image roots --------------------------------------------


@pytest.fixture(scope="module")
def confined(demo_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store whose run's images_root is ROOT, with frames pointing in and out of it."""
    base = tmp_path_factory.mktemp("confined")
    root, outside = base / "survey", base / "outside"
    (root / "CAM1").mkdir(parents=True)
    outside.mkdir()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(root / "CAM1" / "ok.jpg")
    Image.new("RGB", (64, 48), (30, 30, 200)).save(outside / "secret.jpg")
    (root / "CAM1" / "link.jpg").symlink_to(outside / "secret.jpg")
    (root / "escape").symlink_to(outside, target_is_directory=True)
    tables = {name: pq.read_table(store.StorePaths(demo_dir).table(name)) for name in RUN_TABLES}
    ids = tables["images"]["image_id"].to_pylist()
    cases = {
        "inside": str(root / "CAM1" / "ok.jpg"),
        "dotdot": f"{root}/CAM1/../../outside/secret.jpg",
        "absolute": str(outside / "secret.jpg"),
        "etc": "/etc/passwd",
        "symlink": str(root / "CAM1" / "link.jpg"),
        "dir_symlink": str(root / "escape" / "secret.jpg"),
        "relative": "outside/secret.jpg",
        "prefix_sibling": f"{root}-evil/x.jpg",
        "simulated": "simulated://CAM1/../../../etc/passwd",
    }
    by_id = dict(zip(ids, cases.values(), strict=False))
    paths = [
        by_id.get(i, p) for i, p in zip(ids, tables["images"]["file_path"].to_pylist(), strict=True)
    ]
    images = tables["images"].set_column(
        tables["images"].schema.get_field_index("file_path"), "file_path", pa.array(paths)
    )
    runs = tables["runs"]
    runs = runs.set_column(runs.schema.get_field_index("kind"), "kind", pa.array(["pipeline"]))
    runs = runs.set_column(
        runs.schema.get_field_index("images_root"), "images_root", pa.array([str(root)])
    )
    data = base / "store"
    store.write_tables(data, {**tables, "images": images, "runs": runs})
    return {"data": data, "base": base, "ids": dict(zip(cases, ids, strict=False))}


def _assert_refused(response: Any, base: Path) -> None:
    assert response.status_code == 404
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert "/" not in body and str(base) not in body and "root:" not in body


def test_thumbnails_refuse_files_outside_the_image_root(confined: dict[str, Any]) -> None:
    client = create_app(Settings(data_dir=confined["data"], tiles="none")).server.test_client()
    ids = confined["ids"]
    ok = client.get(f"/thumbnail/{ids['inside']}")
    assert ok.status_code == 200 and ok.mimetype == "image/jpeg"
    for case in (
        "dotdot",
        "absolute",
        "etc",
        "symlink",
        "dir_symlink",
        "relative",
        "prefix_sibling",
        "simulated",
    ):
        _assert_refused(client.get(f"/thumbnail/{ids[case]}"), confined["base"])


@pytest.mark.parametrize(
    "url",
    [
        "/thumbnail/..%2F..%2Fetc%2Fpasswd",
        "/thumbnail/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/thumbnail/%2e%2e",
        "/thumbnail/..",
        "/thumbnail/%2Fetc%2Fpasswd",
        "/thumbnail//etc/passwd",
        "/thumbnail/../../etc/passwd",
        "/thumbnail/CAM1/ok.jpg",
        "/thumbnail/%00",
        "/thumbnail/0123456789abcdef0123456789abcdef",  # well formed, not in the store
    ],
)
def test_thumbnail_urls_carrying_paths_get_404(confined: dict[str, Any], url: str) -> None:
    client = create_app(Settings(data_dir=confined["data"], tiles="none")).server.test_client()
    _assert_refused(client.get(url), confined["base"])
    survey = confined["base"] / "survey" / "CAM1" / "ok.jpg"
    _assert_refused(client.get("/thumbnail/" + quote(str(survey), safe="")), confined["base"])


def test_configured_image_roots_replace_the_runs_roots(confined: dict[str, Any]) -> None:
    elsewhere = confined["base"] / "outside"
    app = create_app(Settings(data_dir=confined["data"], tiles="none", image_roots=(elsewhere,)))
    client = app.server.test_client()
    _assert_refused(client.get(f"/thumbnail/{confined['ids']['inside']}"), confined["base"])
    assert client.get(f"/thumbnail/{confined['ids']['absolute']}").status_code == 200


@FUZZ
@given(image_id=st.one_of(st.sampled_from(SQL_ATTACKS), st.text(min_size=1, max_size=80)))
def test_hostile_thumbnail_ids_get_404(confined: dict[str, Any], image_id: str) -> None:
    client = _fuzz_client(confined["data"])
    response = client.get("/thumbnail/" + quote(image_id, safe=""))
    _assert_refused(response, confined["base"])


_CLIENTS: dict[Path, Any] = {}


def _fuzz_client(data: Path) -> Any:
    if data not in _CLIENTS:
        _CLIENTS[data] = create_app(Settings(data_dir=data, tiles="none")).server.test_client()
    return _CLIENTS[data]


# --- hostile control values: parameterized SQL, no crash, store unchanged -------------------


@pytest.fixture(scope="module")
def fuzz_ctx(demo_dir: Path) -> Iterator[DashboardContext]:
    path = store.StorePaths(demo_dir).duckdb
    before = (_digest(path), _counts(path))
    yield build_context(Settings(data_dir=demo_dir, tiles="none", max_detections=5))
    assert (_digest(path), _counts(path)) == before, "a callback changed the store"


def _alert_or_output(result: dict[str, Any]) -> None:
    assert isinstance(result, dict) and "alert" in result
    text = repr(result["alert"])
    assert "Traceback" not in text and "uncia.duckdb" not in text and common.FAILED not in text


@FUZZ
@given(controls=CONTROLS, hexagon=HOSTILE, version=HOSTILE, season=HOSTILE)
def test_hostile_hexagons_never_crash_the_frame_list(
    fuzz_ctx: DashboardContext, controls: dict[str, Any], hexagon: Any, version: Any, season: Any
) -> None:
    result = callbacks.show_detections(fuzz_ctx, hexagon, version, **controls)
    _alert_or_output(result)
    if isinstance(result.get("cards"), list) and result["cards"]:
        # an injected hexagon must not list frames of other hexagons
        assert isinstance(hexagon, str) and re.fullmatch(r"[0-9a-f]{15}", hexagon)
    assert set(callbacks.toggle_custom_months(season)) == {"start_disabled", "end_disabled"}
    _alert_or_output(callbacks.render_header(fuzz_ctx, version))


@FUZZ
@given(click=HOSTILE, cell=HOSTILE, triggered=HOSTILE)
def test_hostile_picks_give_a_string_or_none(click: Any, cell: Any, triggered: Any) -> None:
    for trig in (triggered, "hotspot-map", "hotspot-table"):
        picked = callbacks.select_hexagon(click, cell, trig)
        assert picked is None or isinstance(picked, str)


PROP_VALUES: dict[str, list[Any]] = {
    "resolution.value": VALID["resolution"],
    "date-range.start_date": VALID["start_date"],
    "date-range.end_date": VALID["end_date"],
    "season.value": VALID["season"],
    "month-start.value": VALID["month_start"],
    "month-end.value": VALID["month_end"],
    "threshold.value": VALID["threshold"],
    "period.value": ["week", "month"],
    "data-version.data": ["v1"],
    "refresh.n_intervals": [1],
}


@pytest.fixture(scope="module")
def fuzz_app(demo_dir: Path, fuzz_ctx: DashboardContext) -> Any:
    return create_app(Settings(data_dir=demo_dir, tiles="none"))


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # shrinking whole pages is slow
)
@given(data=st.data())
def test_hostile_callback_posts_get_no_trace_and_leave_the_store(
    demo_dir: Path, fuzz_app: Any, data: st.DataObject
) -> None:
    """Every read callback over HTTP, as a browser (or an attacker) posts to it."""
    client = fuzz_app.server.test_client()
    deps = read_callbacks(fuzz_app)
    assert len(deps) >= 5
    for dep in deps:
        values = {}
        for item in dep["inputs"] + dep["state"]:
            key = f"{item['id']}.{item['property']}"
            valid = PROP_VALUES.get(key, [None])
            values[key] = data.draw(st.one_of(st.sampled_from(valid), HOSTILE), label=key)
        response = client.post("/_dash-update-component", json=dash_payload(dep, values))
        assert response.status_code in (200, 204), (dep["output"], response.data[:300])
        body = response.get_data(as_text=True)
        assert "Traceback" not in body and str(demo_dir) not in body and 'File "' not in body


# --- errors reach the browser without a trace or a path ------------------------------------


def test_a_corrupt_store_gives_messages_without_paths(demo_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "broken-survey"
    data.mkdir()
    store_file = store.StorePaths(data).duckdb
    store_file.write_bytes(os.urandom(8192))
    app = create_app(Settings(data_dir=data, tiles="none"))
    client = app.server.test_client()
    values = {key: valid[-1] for key, valid in PROP_VALUES.items()}
    callback_answers = [
        client.post("/_dash-update-component", json=dash_payload(dep, values))
        for dep in read_callbacks(app)
    ]
    assert all(r.status_code in (200, 204) for r in callback_answers)
    assert any(common.UNREADABLE in r.get_data(as_text=True) for r in callback_answers)
    answers = [
        *callback_answers,
        client.get("/thumbnail/0123456789abcdef"),
        client.get("/_dash-layout"),
        client.get("/"),
    ]
    assert answers[-3].status_code == 503
    for response in answers:
        body = response.get_data(as_text=True)
        assert str(tmp_path) not in body and "broken-survey" not in body
        assert "Traceback" not in body and "duckdb" not in body.lower()


def test_an_unexpected_exception_answers_500_without_details(demo_dir: Path) -> None:
    app = create_app(Settings(data_dir=demo_dir, tiles="none"))

    def broken(n_clicks: Any) -> str:
        raise RuntimeError(f"secret detail at {demo_dir}/uncia.duckdb")

    app.callback(Output("broken-out", "children"), Input("broken-in", "n_clicks"))(broken)
    response = app.server.test_client().post(
        "/_dash-update-component",
        json={
            "output": "broken-out.children",
            "outputs": {"id": "broken-out", "property": "children"},
            "inputs": [{"id": "broken-in", "property": "n_clicks", "value": 1}],
            "changedPropIds": ["broken-in.n_clicks"],
            "state": [],
        },
    )
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "secret detail" not in body and str(demo_dir) not in body and "Traceback" not in body

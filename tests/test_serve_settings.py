"""`uncia serve` settings: defaults < settings file [serve] < environment < command line, the
same rule as `uncia run`, and a clear error for anything unknown or out of range."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli.main import build_parser, main
from cli.serve import check_data_folder, settings_from_args
from dashboard.settings import Settings
from pipeline.errors import ConfigError


def settings(argv: list[str], env: dict[str, str] | None = None) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *argv]), env=env or {})


def test_defaults_without_file_or_environment(tmp_path: Path) -> None:
    got = settings(["--data", str(tmp_path)])
    assert got == Settings(data_dir=tmp_path)
    assert (got.gap_days, got.min_trap_nights, got.port, got.host) == (
        None,  # no gaps guessed from silence unless asked for
        30,
        8050,
        "127.0.0.1",
    )


def test_file_then_environment_then_command_line(tmp_path: Path) -> None:
    config = tmp_path / "team.toml"
    config.write_text(
        "[serve]\n"
        "gap-days = 21\n"
        "min_trap_nights = 10\n"
        "public_min_cameras = 5\n"
        "port = 9000\n"
        'trusted_proxies = ["10.0.0.5"]\n'
        "[run]\n"
        'backbone = "efficientnet_lite0"\n'  # another command's table is not serve's business
    )
    base = ["--data", str(tmp_path), "--config", str(config)]
    from_file = settings(base)
    assert (from_file.gap_days, from_file.min_trap_nights, from_file.public_min_cameras) == (
        21,
        10,
        5,
    )
    assert from_file.port == 9000 and from_file.trusted_proxies == ("10.0.0.5",)
    env = {"UNCIA_SERVE_GAP_DAYS": "14", "UNCIA_SERVE_TRUSTED_PROXIES": "10.0.0.6, 10.0.0.7"}
    from_env = settings(base, env)
    assert from_env.gap_days == 14 and from_env.min_trap_nights == 10
    assert from_env.trusted_proxies == ("10.0.0.6", "10.0.0.7")
    from_cli = settings([*base, "--gap-days", "3", "--port", "9100"], env)
    assert (from_cli.gap_days, from_cli.port, from_cli.min_trap_nights) == (3, 9100, 10)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[serve]\ngap_dayz = 3\n", "unknown option 'gap_dayz' in [serve]"),
        ("[serve]\ngap_days = 400\n", "gap_days must be 1–365 (or 0: off)"),
        ('[serve]\ngap_days = "often"\n', "gap_days: cannot use 'often'"),
        ("[serve]\nport = 70000\n", "port must be 1–65535"),
        ("serve = 3\n", "[serve] must be a table"),
        ("[serve\n", "config file"),
    ],
)
def test_bad_settings_files_are_refused_with_the_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    config = tmp_path / "team.toml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=None) as caught:
        settings(["--data", str(tmp_path), "--config", str(config)])
    assert message in str(caught.value)


def test_a_missing_settings_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        settings(["--data", str(tmp_path), "--config", str(tmp_path / "nope.toml")])


def test_tiles_default_to_the_offline_map_and_a_url_must_be_given(tmp_path: Path) -> None:
    got = settings(["--data", str(tmp_path)])
    assert got.tiles == "none" and got.tile_url is None  # nothing fetched from a third party
    url = "https://tiles.example.org/{z}/{x}/{y}.png"
    assert settings(["--data", str(tmp_path), "--tiles", url]).tile_url == url
    with pytest.raises(ConfigError, match="'auto' is gone"):
        settings(["--data", str(tmp_path), "--tiles", "auto"])


def test_gap_guessing_and_the_outages_file_are_set_from_the_command_line_or_a_file(
    tmp_path: Path,
) -> None:
    config = tmp_path / "team.toml"
    config.write_text('[serve]\ngap_days = 14\noutages_file = "field/outages.csv"\n')
    base = ["--data", str(tmp_path), "--config", str(config)]
    from_file = settings(base)
    assert from_file.gap_days == 14 and from_file.outages_file == Path("field/outages.csv")
    assert settings([*base, "--gap-days", "0"]).gap_days is None  # 0 turns guessing off
    got = settings(["--data", str(tmp_path), "--outages", str(tmp_path / "o.csv")])
    assert got.outages_file == tmp_path / "o.csv" and got.gap_days is None


def test_serve_refuses_a_folder_without_a_store_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    images = tmp_path / "photos"
    (images / "CAM-01").mkdir(parents=True)
    (images / "CAM-01" / "IMG_0001.JPG").write_bytes(b"\xff\xd8")
    for folder, reason in (
        (tmp_path / "typo", "no such folder"),
        (images, "holds no Uncia store (uncia.duckdb)"),
    ):
        assert main(["serve", "--data", str(folder)]) == 2
        err = capsys.readouterr().err
        assert reason in err and len(err.strip().splitlines()) == 1
    started = tmp_path / "run"  # `uncia run` has begun: the page waits for its checkpoint
    (started / "work" / "runs").mkdir(parents=True)
    check_data_folder(started)

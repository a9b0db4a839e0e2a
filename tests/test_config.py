"""Option precedence: defaults < config file < environment < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.config import resolve_run_options
from pipeline.errors import ConfigError

BASE = {"images_root": "imgs", "deployments": "d.csv", "out_dir": "out"}


def test_precedence_defaults_file_env_cli(tmp_path: Path) -> None:
    config = tmp_path / "uncia.toml"
    config.write_text(
        '[run]\nbatch_size = 8\nworkers = 3\nthreshold = 0.7\nbackbone = "efficientnet_lite0"\n'
    )
    env = {"UNCIA_WORKERS": "4", "UNCIA_THRESHOLD": "0.8"}
    options = resolve_run_options({**BASE, "threshold": 0.9}, env=env, config_file=config)
    assert options.batch_size == 8  # file over default
    assert options.workers == 4  # environment over file
    assert options.threshold == 0.9  # command line over environment
    assert options.backbone == "efficientnet_lite0"
    assert options.burst_gap_seconds == 60.0  # default
    assert isinstance(options.images_root, Path)


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"batch_size": 0}, "batch size"),
        ({"threshold": 1.5}, "threshold"),
        ({"backbone": "vgg"}, "backbone"),
        ({"aggregation": "median"}, "aggregation"),
        ({"burst_gap_seconds": -5}, "burst gap"),
    ],
)
def test_bad_values_are_config_errors(given: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_run_options({**BASE, **given}, env={})


def test_bad_environment_and_unknown_file_keys(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="workers"):
        resolve_run_options(BASE, env={"UNCIA_WORKERS": "many"})
    config = tmp_path / "c.toml"
    config.write_text("[run]\nbatchsize = 3\n")
    with pytest.raises(ConfigError, match="unknown option"):
        resolve_run_options(BASE, env={}, config_file=config)
    with pytest.raises(ConfigError, match="missing required"):
        resolve_run_options({"images_root": "x"}, env={})

"""Validate a Camtrap DP 1.0.2 package offline: the profile and the three table schemas ship
in `pipeline/interop/schemas/`, so nothing is fetched.

Two checks, both needed for "valid": the package descriptor against the Camtrap DP profile
(jsonschema; the profile's first half, a reference to the generic Data Package profile, is
what frictionless's own Package checks), then every resource against its table schema, with
primary and foreign keys, by frictionless.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import frictionless
import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from pipeline.errors import InputError

CAMTRAP_DP_VERSION = "1.0.2"
SCHEMA_BASE = f"https://raw.githubusercontent.com/tdwg/camtrap-dp/{CAMTRAP_DP_VERSION}"
PROFILE_URL = f"{SCHEMA_BASE}/camtrap-dp-profile.json"
TABLE_NAMES = ("deployments", "media", "observations")
# The GeoJSON schema the profile's `spatial` refers to; frictionless ships a copy.
GEOJSON_URL = "http://json.schemastore.org/geojson.json"


def table_schema_url(table: str) -> str:
    return f"{SCHEMA_BASE}/{table}-table-schema.json"


@cache
def shipped_schema(name: str) -> dict[str, Any]:
    """One of the shipped JSON files: `camtrap-dp-profile` or `<table>-table-schema`."""
    text = resources.files("pipeline.interop").joinpath("schemas", f"{name}.json").read_text()
    return json.loads(text)


def _profile_validator() -> jsonschema.Draft4Validator:
    profile = copy.deepcopy(shipped_schema("camtrap-dp-profile"))
    profile["allOf"][0] = {}  # the generic Data Package part: frictionless checks it
    geojson = json.loads(
        resources.files("frictionless").joinpath("assets", "profiles", "geojson.json").read_text()
    )
    registry: Registry = Registry().with_resource(
        GEOJSON_URL, Resource.from_contents(geojson, default_specification=DRAFT4)
    )
    return jsonschema.Draft4Validator(profile, registry=registry)


def validate_package(package_dir: Path) -> list[str]:
    """Return every problem of the Camtrap DP package in `package_dir` (empty: valid).

    Raises InputError when there is no readable datapackage.json.
    """
    package_dir = Path(package_dir)
    try:
        descriptor = json.loads((package_dir / "datapackage.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"no readable datapackage.json in {package_dir}: {exc}") from exc
    problems = [
        f"datapackage.json {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
        for e in _profile_validator().iter_errors(descriptor)
    ]
    if descriptor.get("profile") != PROFILE_URL:
        problems.append(f"datapackage.json profile: expected {PROFILE_URL}")
    local = copy.deepcopy(descriptor)
    local.pop("profile", None)  # a URL frictionless would fetch: checked above instead
    for resource in local.get("resources", []):
        schema = resource.get("schema")
        if resource.get("name") in TABLE_NAMES and isinstance(schema, str):
            if schema != table_schema_url(resource["name"]):
                problems.append(f"resource {resource['name']}: schema {schema} is not 1.0.2")
            resource["schema"] = shipped_schema(f"{resource['name']}-table-schema")
    with frictionless.system.use_context(trusted=True):
        try:
            report = frictionless.Package(local, basepath=str(package_dir)).validate()
        except frictionless.FrictionlessException as exc:
            return [*problems, f"datapackage.json: {exc}"]
    for task in report.tasks:
        for error in task.errors:
            row = getattr(error, "row_number", None)
            where = f"{task.name}" + (f" row {row}" if row else "")
            problems.append(f"{where}: {error.type}: {error.message}")
    problems.extend(f"package: {e.type}: {e.message}" for e in report.errors)
    return problems

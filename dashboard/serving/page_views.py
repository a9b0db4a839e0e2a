"""The page's read-only views, answered once per data-folder state and inputs.

The map, series, diel / timeline and review gallery callbacks are pure functions of the data
folder (store snapshot, reviews, localization tables) and their inputs. `PageViews` keeps their
answers, so the store warmer can draw the page's opening view in the background after a server
start or a pipeline checkpoint, and the first visitor gets it ready-made (on the 10-million-row
bench store these callbacks cost 0.4-0.7 s of server time while the browser waits). One caller
computes a missing answer while any others asking the same wait for it.

The HTTP callback cache (callback_cache.py) still serves repeated requests byte for byte; this
one sits below it, keyed by arguments rather than request bodies, which the warmer cannot know.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

Inputs = dict[str, tuple[str, str]]  # keyword -> (component id, property)


@dataclass(frozen=True)
class PageView:
    """A registered view: its answer function and where each keyword's value comes from."""

    name: str
    answer: Callable[..., Any]
    inputs: Inputs


class PageViews:
    """LRU of view answers keyed by (view, data-folder state, arguments), with a time to live."""

    ENTRIES = 32

    def __init__(
        self, state: Callable[[], str], entries: int = ENTRIES, ttl_s: float = 300.0
    ) -> None:
        """`state` gives the data folder's current state (`Store.state`): answers of an older
        state are never served. `entries` 0 keeps nothing: each call computes its answer (the
        bench's "without"; the store warmer then warms only the store)."""
        self.state = state
        self.entries = entries
        self.ttl_s = ttl_s
        self.views: dict[str, PageView] = {}
        self._answers: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._computing: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def register(self, name: str, fn: Callable[..., Any], inputs: Inputs) -> Callable[..., Any]:
        """Keep `fn`'s answers; returns the function to give Dash (keyword arguments only)."""

        def answer(**kwargs: Any) -> Any:
            return self.answer(name, fn, kwargs)

        answer.__name__ = answer.__qualname__ = name
        self.views[name] = PageView(name, answer, inputs)
        return answer

    def answer(self, name: str, fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
        if self.entries == 0:
            return fn(**kwargs)
        key = json.dumps([name, self.state(), kwargs], sort_keys=True, default=repr)
        while True:
            with self._lock:
                entry = self._answers.get(key)
                if entry is not None and entry[0] >= time.monotonic():
                    self._answers.move_to_end(key)
                    self.hits += 1
                    return entry[1]
                waiting = self._computing.get(key)
                if waiting is None:
                    self._computing[key] = threading.Event()
                    self.misses += 1
                    break
            waiting.wait()  # someone else is computing it; then look again
        try:
            value = fn(**kwargs)
            with self._lock:
                self._answers[key] = (time.monotonic() + self.ttl_s, value)
                self._answers.move_to_end(key)
                while len(self._answers) > self.entries:
                    self._answers.popitem(last=False)
            return value
        finally:
            with self._lock:
                self._computing.pop(key).set()

    def warm(self, values: dict[tuple[str, str], Any]) -> None:
        """Answer every view with `values` (component id, property) -> value, as a browser
        opening the page would ask."""
        for view in self.views.values():
            view.answer(**{kw: values.get(source) for kw, source in view.inputs.items()})


def starting_values(layout: Any) -> dict[tuple[str, str], Any]:
    """Every (id, property) -> value a Dash layout tree starts with (string ids only)."""
    values: dict[tuple[str, str], Any] = {}
    for component in _walk(layout):
        component_id = getattr(component, "id", None)
        if not isinstance(component_id, str):
            continue
        for prop in getattr(component, "_prop_names", ()):
            values[(component_id, prop)] = getattr(component, prop, None)
    return values


def _walk(node: Any) -> Iterable[Any]:
    yield node
    children = getattr(node, "children", None)
    for child in children if isinstance(children, list | tuple) else [children]:
        if child is not None and not isinstance(child, str | int | float):
            yield from _walk(child)

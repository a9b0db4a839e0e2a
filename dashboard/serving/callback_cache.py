"""A small in-memory cache of callback answers, so many people looking at the same view cost one
computation: keyed by the user, the data folder's state and the exact request body.

A pipeline checkpoint (the store file is replaced), a review or match decision (a file renamed
into its folder, which changes the folder's mtime) or a table of `uncia localize` /
`uncia identify` renamed into DIR/parquet starts a new key space (`data.store.data_state`);
entries also expire after `ttl_s`. Write callbacks (marked with auth.require_role) are never cached.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, g, request

from dashboard.serving.auth import REQUIRED_ROLE_ATTR, current_user

MAX_ENTRIES = 2048
MAX_BODY_BYTES = 2 * 1024 * 1024  # larger answers are not kept


class CallbackCache:
    """LRU of (key → status, body, mimetype) with a time to live."""

    def __init__(self, ttl_s: float = 300.0, max_entries: int = MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, tuple[float, int, bytes, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key: bytes) -> tuple[int, bytes, str] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[0] < time.monotonic():
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[1:]

    def put(self, key: bytes, status: int, body: bytes, mimetype: str) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic() + self.ttl_s, status, body, mimetype)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def install_callback_cache(
    server: Flask,
    state: Callable[[], str],
    callback_map: dict[str, Any],
    cache: CallbackCache,
) -> None:
    """Answer repeated POSTs to /_dash-update-component from `cache` (install after auth)."""

    @server.before_request
    def answer_from_cache() -> Response | None:
        if request.method != "POST" or not request.path.endswith("_dash-update-component"):
            return None
        body = request.get_data(cache=True)
        payload = request.get_json(silent=True)
        output = payload.get("output") if isinstance(payload, dict) else None
        entry = callback_map.get(output) if isinstance(output, str) else None
        if entry is None or getattr(entry.get("callback"), REQUIRED_ROLE_ATTR, None):
            return None
        user = current_user()
        digest = hashlib.sha256()
        for part in (user.name if user else "", state(), request.path):
            digest.update(part.encode() + b"\0")
        digest.update(body)
        key = digest.digest()
        hit = cache.get(key)
        if hit is not None:
            status, data, mimetype = hit
            return Response(data, status=status, mimetype=mimetype)
        g.uncia_cache_key = key
        return None

    @server.after_request
    def remember(response: Response) -> Response:
        key = g.pop("uncia_cache_key", None)
        if key is not None and response.status_code == 200 and not response.is_streamed:
            data = response.get_data()
            if len(data) <= MAX_BODY_BYTES:
                cache.put(key, response.status_code, data, response.mimetype or "")
        return response

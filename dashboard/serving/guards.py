"""Requests refused before Dash sees them: bodies over the size limit (413) and callback bodies
that are not the shape a Dash page posts (400), or that name no callback (404).

Dash answers such requests with an exception, which the error handler turned into a 500 and a
traceback in the log; a hostile or broken client is not a server error.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

MAX_BODY_BYTES = 4 * 1024 * 1024  # Dash callback bodies are a few kB


def install_request_guards(server: Flask, callback_map: dict[str, Any]) -> None:
    """Refuse oversized bodies (413) and malformed callback posts (400, 404) on `server`."""
    # Werkzeug answers 413 to a body past this when the request reads it; the check below
    # answers before anything reads it.
    server.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES

    @server.before_request
    def refuse_bad_bodies() -> Response | None:
        if (request.content_length or 0) > MAX_BODY_BYTES:
            return Response("413 Request Entity Too Large", status=413, mimetype="text/plain")
        if request.method != "POST" or not request.path.endswith("_dash-update-component"):
            return None
        body = request.get_json(silent=True)
        problem = callback_body_problem(body)
        if problem is not None:
            return Response(f"400 Bad Request: {problem}", status=400, mimetype="text/plain")
        if body["output"] not in callback_map:  # type: ignore[index]  # a dict: checked above
            return Response("404 no such callback", status=404, mimetype="text/plain")
        return None


def callback_body_problem(body: Any) -> str | None:
    """Why `body` is not a Dash callback request, or None when its shape is one."""
    if not isinstance(body, dict):
        return "a JSON object expected"
    if not isinstance(body.get("output"), str):
        return "output must be a string"
    for key in ("inputs", "state"):
        items = body.get(key, [])
        if not isinstance(items, list) or not all(_is_dependency(i) for i in items):
            return f"{key} must be a list of dependencies"
    outputs = body.get("outputs", {})
    outputs = outputs if isinstance(outputs, list) else [outputs]
    if not all(isinstance(o, dict | list) for o in outputs):
        return "outputs must be objects"
    changed = body.get("changedPropIds", [])
    if not isinstance(changed, list) or not all(isinstance(c, str) for c in changed):
        return "changedPropIds must be a list of strings"
    return None


def _is_dependency(item: Any) -> bool:
    """An input or state entry: {"id", "property", "value"}, or a list of them (wildcards)."""
    if isinstance(item, list):
        return all(_is_dependency(i) for i in item)
    return isinstance(item, dict) and "id" in item and isinstance(item.get("property"), str)

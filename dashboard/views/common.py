"""What every view shares: the filters parsed from the controls, and `shows_alert`, which turns a
view's errors into an alert on the page and a traceback in the log."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

from dash import no_update

from dashboard import figures
from dashboard.components import NO_STORE, alert
from dashboard.context import DashboardContext
from dashboard.data import queries
from dashboard.filters import Filters, parse_filters
from pipeline.errors import ConfigError, StoreError

log = logging.getLogger(__name__)


log = logging.getLogger(__name__)


UNREADABLE = (
    "The survey data cannot be read right now; the page will try again. "
    "The server log has the details."
)


WAITING = "Waiting for the pipeline's first checkpoint…"


FAILED = "Something went wrong while updating this view. The server log has the details."


def shows_alert(
    *outputs: str, announce_missing_store: bool = False
) -> Callable[[Callable[..., dict[str, Any]]], Callable[..., Any]]:
    """Turn exceptions of a callback returning {output: value} into an alert in its "alert" key.

    The other `outputs` keep their current value (no_update). Before the first checkpoint only
    the callback with `announce_missing_store` says so; the others show a waiting figure.
    Only messages written for users reach the page; tracebacks go to the log.
    """

    def decorate(fn: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        @functools.wraps(fn)
        def guarded(ctx: DashboardContext, *args: Any, **kwargs: Any) -> dict[str, Any]:
            kept: dict[str, Any] = dict.fromkeys(outputs, no_update)
            try:
                return fn(ctx, *args, **kwargs)
            except ConfigError as exc:
                message = f"Cannot show this view: {exc}."
            except StoreError:
                if ctx.store.version() is None:  # expected before the first checkpoint
                    log.info("%s: no store in the data folder yet", fn.__name__)
                    if "figure" in kept:
                        kept["figure"] = figures.message_figure(WAITING)
                    return {**kept, "alert": [alert(NO_STORE)] if announce_missing_store else []}
                log.warning("%s: store not readable", fn.__name__, exc_info=True)
                message = UNREADABLE
            except Exception:
                log.exception("callback %s failed", fn.__name__)
                message = FAILED
            return {**kept, "alert": [alert(message)]}

        return guarded

    return decorate


def view_filters(overview: queries.Overview, controls: dict[str, Any]) -> Filters:
    """The controls parsed into Filters; the threshold defaults to the latest run's."""
    default = overview.leopard_threshold if overview.leopard_threshold is not None else 0.5
    return parse_filters(default_threshold=default, **controls)

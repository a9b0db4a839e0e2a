"""The wiring every page shares: a view bound to the context, and a read-only view whose
answers the context keeps (`serving.page_views`) so the store warmer can answer it first.

Not a page: pages import it, and it imports no page.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import dash
from dash import Input, Output

from dashboard.context import DashboardContext


def bind(fn: Callable[..., Any], ctx: DashboardContext) -> Callable[..., Any]:
    """`fn` with the context as its first argument, for Dash to call with the inputs."""

    @functools.wraps(fn)
    def bound(*args: Any, **kwargs: Any) -> Any:
        return fn(ctx, *args, **kwargs)

    return bound


def page_view(
    app: dash.Dash,
    ctx: DashboardContext,
    fn: Callable[..., Any],
    output: dict[str, Output],
    inputs: dict[str, Input],
) -> None:
    """Register a read-only callback whose answers ctx.views keeps per data state and inputs;
    the store warmer answers it with the layout's starting values before anyone asks."""
    sources = {kw: (str(i.component_id), i.component_property) for kw, i in inputs.items()}
    name = getattr(fn, "__name__", repr(fn))
    app.callback(output=output, inputs=inputs)(ctx.views.register(name, bind(fn, ctx), sources))

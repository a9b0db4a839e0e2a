"""`create_app(settings)`: the Dash app: its context, the page composed of its sections, their
callbacks, the thumbnail and offline basemap routes, authentication, the callback cache and the
store warmer.

Nothing happens at import time; the CLI (`uncia serve`) and the root `app.py` call create_app.
"""

from __future__ import annotations

from typing import Any

import dash

from dashboard.context import ALL_CACHES, Caches, DashboardContext, build_context
from dashboard.pages import hotspots, individuals, insights
from dashboard.serving.auth import authenticator_for, install_auth
from dashboard.serving.basemap import register_basemap
from dashboard.serving.callback_cache import CallbackCache, install_callback_cache
from dashboard.serving.guards import install_request_guards
from dashboard.serving.thumbnails import ThumbnailService, register_thumbnails
from dashboard.serving.warmup import StoreWarmer, stop_background_work
from dashboard.settings import Settings

__all__ = ["create_app", "page_layout", "stop_background_work"]


def page_layout(ctx: DashboardContext) -> Any:
    """The whole page as it is when it loads: the hotspot page with the insight controls and
    sections in their places, the individuals section last among them (inside the page)."""
    return dash.html.Div(
        [
            hotspots.layout(
                ctx, insights.controls(ctx), [*insights.sections(), individuals.layout(ctx)]
            ),
        ]
    )


def create_app(settings: Settings, caches: Caches = ALL_CACHES) -> dash.Dash:
    """Build the hotspot dashboard for `settings.data_dir`; run it with `app.run(...)`.

    The folder may not hold a store yet: the page says so and shows the data once a
    pipeline checkpoint writes it. `caches` says which caches are on (all, outside the
    benchmark that measures each: bench/caches_bench.py).
    """
    app = dash.Dash(
        __name__,
        title="Uncia — snow leopard hotspots",
        update_title="",
        serve_locally=True,
    )
    ctx = build_context(settings, url_prefix=app.config.requests_pathname_prefix, caches=caches)
    app.server.extensions["uncia_context"] = ctx
    app.index_string = hotspots.INDEX_STRING
    app.layout = lambda: page_layout(ctx)
    hotspots.register(app, ctx)
    insights.register(app, ctx, hotspots.filter_inputs())
    individuals.register(app, ctx, hotspots.filter_inputs())
    register_thumbnails(
        app.server,
        ThumbnailService(ctx.store, settings.thumbnail_px, settings.image_roots),
        prefix=app.config.routes_pathname_prefix,
    )
    register_basemap(app.server, prefix=app.config.routes_pathname_prefix)
    # Last, so it sees every route; write callbacks are marked with auth.require_role.
    install_auth(
        app.server,
        authenticator_for(
            settings.auth_file, settings.trusted_user_header, settings.trusted_proxies
        ),
        host=settings.host,
        allowed_hosts=settings.allowed_hosts,
        callback_map=app.callback_map,
    )
    install_request_guards(app.server, app.callback_map)  # after auth: 401 comes first
    if caches.callback_cache:
        install_callback_cache(app.server, ctx.store.state, app.callback_map, CallbackCache())
    # Dash registers its component scripts on a process's first request, but marks itself set
    # up before it has: the parallel first script requests a fresh server (or a new --workers
    # process) receives found no registered library and answered 500. Setting up now, before
    # any request, closes that race.
    app._setup_server()
    ctx.tiles.start_probe()
    if caches.warmer:
        warmer = StoreWarmer(
            ctx.store.version,
            ctx.views,
            lambda: page_layout(ctx),
            interval_s=settings.refresh_seconds,
        )
        app.server.extensions["uncia_warmer"] = warmer
        warmer.start()
    return app

"""The Litestar application factory: `uvicorn app.main:create_app --factory`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from litestar import Litestar
from litestar.config.compression import CompressionConfig
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import SwaggerRenderPlugin
from litestar.routes import HTTPRoute
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from app.auth.controller import AuthController
from app.auth.middleware import BearerAuthMiddleware, role_guard
from app.auth.roles import PUBLIC, allowed_roles, is_framework_handler
from app.config import Settings, get_settings
from app.db import close_database, open_database, stop_sqlite_connections_before_exit
from app.deps import DEPENDENCIES
from app.errors import EXCEPTION_HANDLERS
from app.input_guard import InputGuardMiddleware, assert_every_route_holds_bodies_strictly, refuse_lax_json_body
from app.observability.asgi import observe
from app.observability.logs import configure_logging
from app.observability.routes import metrics_endpoint
from app.openapi import StrictStructSchemaPlugin, allow_header_hook, components, describe_access, document_problems
from app.people.directory import directory_for
from app.privacy.audit import AuditContextMiddleware
from app.redis import create_redis
from app.security.ratelimit import RateLimitMiddleware
from app.system.controller import health, ready
from app.web.headers import FrameworkPagePolicyMiddleware, security_headers_hook
from app.web.idempotency import IdempotencyMiddleware
from app.web.pages import template_config
from realtime.gateway import realtime_gateway, realtime_lifespan

VERSION = "0.1.0"
DOCS_ASSETS = "/schema/assets"


def route_handlers() -> list[ControllerRouterHandler]:
    """Every HTTP and websocket entry point of the hub, in one list."""
    from app.amc.routes import ROUTES as AMC_ROUTES
    from app.attendance.routes import ROUTES as ATTENDANCE_ROUTES
    from app.billing.routes import ROUTES as BILLING_ROUTES
    from app.complaints.routes import ROUTES as COMPLAINT_ROUTES
    from app.occupants.controller import OccupantController
    from app.permits.routes import ROUTES as PERMIT_ROUTES
    from app.places.routes import PAGE_ROUTES as PLACE_PAGES
    from app.places.routes import ROUTES as PLACE_ROUTES
    from app.privacy.routes import ROUTES as PRIVACY_ROUTES
    from app.reports.routes import routes as report_routes
    from app.sites.controller import SiteController
    from app.slots.routes import ROUTES as SLOT_ROUTES
    from app.visitors.routes import ROUTES as VISITOR_ROUTES
    from app.web import control, control_assets, control_reports, guard, occupant, staff
    from app.web.pages import pages_router, static_router
    from notifications.api import (
        AnnouncementController,
        FeedController,
        NcprController,
        NotificationSettingsController,
        NotifyRatesController,
        PreferenceController,
    )
    from notifications.webhooks import TwilioWebhookController

    return [
        health,
        ready,
        metrics_endpoint,
        AuthController,
        SiteController,
        OccupantController,
        AnnouncementController,
        PreferenceController,
        FeedController,
        NcprController,
        NotificationSettingsController,
        NotifyRatesController,
        TwilioWebhookController,
        *VISITOR_ROUTES,
        *COMPLAINT_ROUTES,
        *SLOT_ROUTES,
        *PRIVACY_ROUTES,
        *BILLING_ROUTES,
        *PERMIT_ROUTES,
        *ATTENDANCE_ROUTES,
        *AMC_ROUTES,
        *PLACE_ROUTES,
        *report_routes(),
        *__import__("app.dashboard.routes", fromlist=["ROUTES"]).ROUTES,
        docs_assets_router(),
        static_router(),
        pages_router(
            [
                *guard.ROUTES,
                *occupant.ROUTES,
                *control.ROUTES,
                *control_assets.ROUTES,
                *control_reports.ROUTES,
                *staff.ROUTES,
                *PLACE_PAGES,
            ]
        ),
        realtime_gateway,
    ]


def docs_assets_router() -> ControllerRouterHandler:
    """Swagger UI's files, served from the swagger-ui-py wheel: the docs need no CDN."""
    import swagger_ui

    return create_static_files_router(
        path=DOCS_ASSETS,
        directories=[Path(swagger_ui.__file__).parent / "static"],
        include_in_schema=False,
        opt=PUBLIC,
    )


def assert_every_route_declares_access(app: Litestar) -> None:
    """Refuse to start when a route has no access rule: a forgotten rule must not mean 'open'."""
    missing = []
    for route in app.routes:
        if not isinstance(route, HTTPRoute):
            continue
        for handler in route.route_handlers:
            if is_framework_handler(handler):
                continue
            try:
                allowed_roles(handler.opt)
            except LookupError:
                missing.append(f"{sorted(handler.http_methods)} {route.path}")
    if missing:
        raise RuntimeError("routes without an access rule (use allow(...) or PUBLIC): " + ", ".join(missing))


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_format)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        stop_sqlite_connections_before_exit()
        started_pool = await open_database(settings)
        redis = create_redis(settings)
        app.state.redis = redis
        try:
            yield
        finally:
            await redis.aclose()
            if started_pool:
                await close_database()

    from notifications.api import job_queue_lifespan  # closes the arq pool the announcement routes open

    app = Litestar(
        route_handlers=route_handlers(),
        lifespan=[lifespan, realtime_lifespan, job_queue_lifespan],
        dependencies=DEPENDENCIES,
        # The audit context runs inside authentication, so it sees the principal (app.privacy.audit).
        # Outermost first; idempotent replays need the caller, so they run inside authentication.
        middleware=[
            FrameworkPagePolicyMiddleware,
            DefineMiddleware(BearerAuthMiddleware, exclude=["^/schema"]),
            # Rate limits see the principal (per account) and refuse before the route runs.
            DefineMiddleware(RateLimitMiddleware, settings=settings),
            AuditContextMiddleware,
            IdempotencyMiddleware,
            # Innermost: JSON nesting and multipart text checked before any decoder sees the body.
            DefineMiddleware(InputGuardMiddleware, max_body_bytes=settings.max_request_body_bytes),
        ],
        template_config=template_config(),
        before_send=[security_headers_hook(settings)],
        before_request=refuse_lax_json_body,
        # Pages, scripts and JSON travel gzipped (a guard tablet's Wi-Fi is slow). The docs page is left
        # alone: its policy is computed from its body (app.web.headers).
        compression_config=CompressionConfig(backend="gzip", minimum_size=512, exclude=[r"^/schema(?!/assets)"]),
        guards=[role_guard],
        exception_handlers=EXCEPTION_HANDLERS,
        request_max_body_size=settings.max_request_body_bytes,
        openapi_config=OpenAPIConfig(
            title="opshub",
            version=VERSION,
            path="/schema",
            components=components(),
            render_plugins=[
                SwaggerRenderPlugin(
                    js_url=f"{DOCS_ASSETS}/swagger-ui-bundle.js",
                    css_url=f"{DOCS_ASSETS}/swagger-ui.css",
                    standalone_preset_js_url=f"{DOCS_ASSETS}/swagger-ui-standalone-preset.js",
                    favicon='<link rel="icon" href="data:,">',
                )
            ],
        ),
        plugins=[StrictStructSchemaPlugin()],
        state=State({"settings": settings, "directory": directory_for(settings)}),
        debug=False,
        # Our handler on the root logger formats every line (app.observability.logs), Litestar's included.
        logging_config=None,
    )
    assert_every_route_declares_access(app)
    assert_every_route_holds_bodies_strictly(app)
    describe_access(app)
    document_problems(app)
    app.before_send.append(allow_header_hook(app))
    # Outside routing: every request, a 404 or a 401 too, gets its id and is timed.
    return observe(app)

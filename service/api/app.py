"""The app factory: wires settings, store, pipeline and routers; the lifespan owns their lives."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from detectors.contract import Detector
from detectors.energy import EnergyMeter
from service.api import audits, bylines, checks, health, pages
from service.api.connections import SpreadBusyConnectionsMiddleware
from service.api.errors import ERROR_RESPONSES, install_error_handlers
from service.api.limits import BodyLimitMiddleware
from service.api.security import SecurityHeadersMiddleware
from service.config import Settings
from service.domain import Scope
from service.maintenance import RetentionSweeper
from service.metrics import Metrics
from service.pipeline import Pipeline
from service.ratelimit import RateLimiter
from service.store import Store
from service.webhooks import WebhookService
from service.webhooks import router as webhooks_router

logger = logging.getLogger(__name__)


def bootstrap_key(store: Store, settings: Settings) -> str | None:
    """On first start with no key, create an admin key and print it once to stderr."""
    if not settings.bootstrap_api_key or store.count_api_keys() > 0:
        return None
    token = store.create_api_key("bootstrap", [Scope.ADMIN, Scope.CHECK, Scope.AUDIT])
    sys.stderr.write(f"\nbylinecheck: created the first API key (shown once, store it now):\n  {token}\n\n")
    return token


def create_app(
    settings: Settings,
    *,
    detectors: Mapping[str, Detector[Any]] | None = None,
    meter: EnergyMeter | None = None,
) -> FastAPI:
    """Build the app. ``detectors``/``meter`` replace the ones built from settings (tests, benchmarks)."""
    metrics = Metrics()
    store = Store(settings.database_url, settings.secret_key.get_secret_value(),
                  busy_timeout_s=settings.store_busy_timeout_s)
    pipeline = Pipeline(settings, store, detectors=detectors, meter=meter, metrics=metrics)
    webhooks = WebhookService(settings, store, pipeline)
    sweeper = RetentionSweeper(store, settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        store.migrate()
        bootstrap_key(store, settings)
        await pipeline.start()
        await webhooks.start()
        sweeper.start()
        try:
            yield
        finally:
            await sweeper.close()
            await webhooks.close()
            await pipeline.close()
            store.close()

    app = FastAPI(title="bylinecheck", version="0.1.0", lifespan=lifespan, responses=ERROR_RESPONSES,
                  description="Is this article, and its byline, real? Calibrated scores, evidence, and energy.")
    app.state.settings = settings
    app.state.store = store
    app.state.pipeline = pipeline
    app.state.metrics = metrics
    app.state.webhooks = webhooks
    app.state.rate_limiter = RateLimiter(settings.rate_limit_per_minute, settings.rate_limit_burst)
    install_error_handlers(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_request_bytes,
                       idle_timeout_s=settings.body_idle_timeout_s, deadline_s=settings.body_deadline_s)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(SpreadBusyConnectionsMiddleware, busy_in_flight=settings.spread_connections_in_flight,
                       saturated_in_flight=max(settings.spread_connections_in_flight,
                                               settings.spread_connections_max_in_flight))
    app.include_router(health.router)
    app.include_router(checks.router)
    app.include_router(webhooks_router)
    app.include_router(bylines.router)
    app.include_router(pages.router)
    app.include_router(audits.router)
    return app

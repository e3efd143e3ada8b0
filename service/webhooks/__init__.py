"""CMS webhooks: signed inbound events (Ghost, WordPress, Standard Webhooks), a durable huey queue,
and signed outbound callbacks from a persisted outbox. See ``docs/webhooks.md``.

``router`` is imported on first use: the routes import ``service.api``, whose app imports this package,
so an eager import would make ``import service.webhooks`` (the worker's entry) a circular import.
"""

from typing import Any

from service.webhooks.service import WebhookService

__all__ = ["WebhookService", "router"]


def __getattr__(name: str) -> Any:
    if name == "router":
        from service.webhooks.routes import router

        return router
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

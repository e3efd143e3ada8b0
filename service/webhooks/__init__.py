"""CMS webhooks: signed inbound events (Ghost, WordPress, Standard Webhooks), a durable huey queue,
and signed outbound callbacks from a persisted outbox. See ``docs/webhooks.md``."""

from service.webhooks.routes import router
from service.webhooks.service import WebhookService

__all__ = ["WebhookService", "router"]

"""ASGI entry for multi-worker uvicorn (``bylinecheck serve --workers N``): settings from the environment."""

from service.api.app import create_app
from service.config import Settings

app = create_app(Settings())

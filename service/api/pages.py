"""The editors' web page: ``/`` (submit a check), ``/bylines/{name}`` (an author's checks), ``/static/*``.

Caveats first: the pages are static files and carry no data; every result is fetched by the page's
script from the JSON API with the editor's API key, so these routes need no key. Only files that exist
directly in ``service/static/`` with a known suffix are served (no sub-paths, no directory listing).
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.errors import NotFoundError

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
_MEDIA_TYPES = {
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".svg": "image/svg+xml",
    ".ico": "image/x-icon",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,100}$")

router = APIRouter(include_in_schema=False)


def _page(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type=_MEDIA_TYPES[".html"], headers={"Cache-Control": "no-cache"})


@router.get("/")
async def index_page() -> FileResponse:
    return _page("index.html")


@router.get("/bylines/{name}")
async def byline_page(name: str) -> FileResponse:
    """The same page for every name: its script reads the name from the address."""
    return _page("byline.html")


@router.get("/static/{filename}")
async def static_file(filename: str) -> FileResponse:
    """A file from ``service/static/``; raises NotFoundError for anything else."""
    path = STATIC_DIR / filename
    media_type = _MEDIA_TYPES.get(path.suffix)
    if not _NAME.match(filename) or media_type is None or not path.is_file():
        raise NotFoundError(f"no static file {filename}")
    return FileResponse(path, media_type=media_type, headers={"Cache-Control": "no-cache"})

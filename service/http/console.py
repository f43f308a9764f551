"""The web console: one HTML page at ``/`` and its stylesheet and script under ``/console/``.

Plain files shipped in the package (``service/http/static``, package data), no build step. The
page is a client of the public API like any other: it sends the user's key as a Bearer header
(kept in the tab's session storage, never in a URL) and can do nothing the key could not do
with curl. The files themselves are public: they hold no data.
"""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads only its own script and stylesheet and talks only to this origin; it may not
# be framed (clickjacking of the key-holding page) and sends no Referer elsewhere.
_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


@get("/", include_in_schema=False, sync_to_thread=False)
def console_page() -> Response[bytes]:
    return Response((STATIC_DIR / "index.html").read_bytes(), media_type="text/html; charset=utf-8", headers=_HEADERS)


def routes() -> list:
    assets = create_static_files_router(path="/console", directories=[STATIC_DIR], include_in_schema=False,
                                        cache_control=CacheControlHeader(no_cache=True), name="console")
    return [console_page, assets]

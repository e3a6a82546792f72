"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) drawn from files installed with the server, so both work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, and are blank without a network. The wheel of
``fastapi-offline`` (MIT) carries both projects' built files; these pages are FastAPI's, pointed at those files
(FastAPI's documented way of self-hosting them). Each page is sent with a Content-Security-Policy that lets it
load nothing from another origin: ReDoc's sidebar credit would otherwise fetch Redocly's logo from their CDN.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.staticfiles import StaticFiles
from starlette.responses import HTMLResponse

ASSETS = "/docs/assets"
ONLY_THIS_ORIGIN = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:"
)


PAGES: dict[str, tuple[Callable[..., HTMLResponse], str, dict[str, str]]] = {
    "/docs": (
        get_swagger_ui_html,
        "Swagger UI",
        {
            "swagger_js_url": "swagger-ui-bundle.js",
            "swagger_css_url": "swagger-ui.css",
            "swagger_favicon_url": "favicon.png",
        },
    ),
    "/redoc": (
        functools.partial(get_redoc_html, with_google_fonts=False),
        "ReDoc",
        {"redoc_js_url": "redoc.standalone.js", "redoc_favicon_url": "favicon.png"},
    ),
}
"""Each page: FastAPI's function that draws it, its title, and the files it loads (by that function's arguments)."""


def install_docs(app: FastAPI) -> None:
    """Serve the two pages and their files; the app is made with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")
    for path, (draw, name, assets) in PAGES.items():
        app.add_api_route(path, _page(app, draw, name, assets), include_in_schema=False)


def _page(
    app: FastAPI, draw: Callable[..., HTMLResponse], name: str, assets: dict[str, str]
) -> Callable[[Request], Awaitable[HTMLResponse]]:
    async def page(request: Request) -> HTMLResponse:
        """The page over the OpenAPI document, its files from this server, with a policy loading nothing else."""
        root = request.scope.get("root_path", "")
        urls = {argument: f"{root}{ASSETS}/{file}" for argument, file in assets.items()}
        drawn = draw(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - {name}", **urls)
        drawn.headers["content-security-policy"] = ONLY_THIS_ORIGIN
        return drawn

    return page

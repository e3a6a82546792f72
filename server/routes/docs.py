"""``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) drawn from files installed with the server, so both work offline.

FastAPI's own pages load Swagger UI and ReDoc from a CDN, and are blank without a network. The wheel of
``fastapi-offline`` (MIT) carries both projects' built files; these pages are FastAPI's, pointed at those files
(FastAPI's documented way of self-hosting them). Each page is sent with a Content-Security-Policy that lets it
load nothing from another origin: ReDoc's sidebar credit would otherwise fetch Redocly's logo from their CDN.
"""

from __future__ import annotations

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


def install_docs(app: FastAPI) -> None:
    """Serve the two pages and their files; the app is made with ``docs_url=None, redoc_url=None``."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        """Swagger UI over the OpenAPI document: every route, and "Try it out" against this server."""
        root = request.scope.get("root_path", "")
        return _own_origin_only(
            get_swagger_ui_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS}/favicon.png",
            )
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        """ReDoc over the OpenAPI document: the same routes as one readable page."""
        root = request.scope.get("root_path", "")
        return _own_origin_only(
            get_redoc_html(
                openapi_url=f"{root}{app.openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )


def _own_origin_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["content-security-policy"] = ONLY_THIS_ORIGIN
    return page

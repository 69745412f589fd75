"""The OpenAPI UI at `/swagger/` (`ccstream serve --dev`, `ccstream demo --dev`), served from this server.

FastAPI's default page loads Swagger UI from a CDN, which the login nodes and service networks of many
clusters cannot reach: the page stays blank. The assets packaged with fastapi-offline (Swagger UI 5,
which reads OpenAPI 3.1) are served under `/swagger/assets/` instead, so the page needs nothing else.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

PAGE = "/swagger/"
ASSETS = "/swagger/assets"


def install_swagger_ui(app: FastAPI, openapi_url: str) -> None:
    """Serve the UI page at PAGE, reading the document at `openapi_url`, and its assets at ASSETS."""
    app.mount(ASSETS, StaticFiles(directory=str(files("fastapi_offline") / "static")), name="swagger-assets")

    @app.get(PAGE, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png",
        )

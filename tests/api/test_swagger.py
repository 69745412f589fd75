"""The OpenAPI UI of `--dev` works without the internet: page, assets and document from this server."""

from __future__ import annotations

import re

from tests.api.conftest import AppFactory


def test_the_swagger_page_loads_everything_from_this_server(make_client: AppFactory) -> None:
    http = make_client(dev=True)
    page = http.get("/swagger/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
    assert "/swagger/assets/swagger-ui-bundle.js" in sources and "/swagger/assets/swagger-ui.css" in sources
    assert "/swagger/openapi.json" in sources
    assert all(s.startswith("/") for s in sources), sources  # nothing from a CDN
    for source in sources:
        answer = http.get(source)
        assert answer.status_code == 200, source
        assert answer.content, source
    bundle = http.get("/swagger/assets/swagger-ui-bundle.js").text
    assert "SwaggerUIBundle" in bundle
    assert re.search(r'"5\.\d+\.\d+"', bundle), "Swagger UI 5 reads OpenAPI 3.1"
    assert http.get("/swagger/openapi.json").json()["openapi"].startswith("3.1")


def test_without_dev_there_is_no_api_ui(make_client: AppFactory) -> None:
    http = make_client()
    assert http.get("/swagger/").status_code == 404
    assert http.get("/swagger/assets/swagger-ui.css").status_code == 404
    assert http.get("/swagger/openapi.json").status_code == 404

"""`/docs`: Swagger UI, with its JS and CSS served from the installed package.

No CDN: the appliance must work in a lab with no internet. The assets come from the
`swagger-ui-bundle` wheel; the page loads the schema from `/api/openapi.json`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import swagger_ui_bundle
import yaml
from litestar import MediaType, Request, Response, get
from litestar.static_files import create_static_files_router

ASSETS_URL = "/docs/assets"


def swagger_assets_dir() -> Path:
    return Path(swagger_ui_bundle.swagger_ui_path)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>appliance API</title>
  <link rel="stylesheet" href="{assets}/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="{assets}/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/api/openapi.json", dom_id: "#swagger-ui",
                                 deepLinking: true}});
  </script>
</body>
</html>
"""


def openapi_yaml_text(document: dict[str, Any]) -> str:
    """The document as served at /api/openapi.yaml and committed as docs/openapi.yaml."""
    text: str = yaml.safe_dump(document, sort_keys=False)
    return text


@get("/api/openapi.yaml", include_in_schema=False, sync_to_thread=False)
def openapi_yaml(request: Request[Any, Any, Any]) -> Response[str]:
    return Response(openapi_yaml_text(request.app.openapi_schema.to_schema()), media_type="application/yaml")


@get("/api/openapi.json", include_in_schema=False, sync_to_thread=False)
def openapi_json(request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
    return Response(request.app.openapi_schema.to_schema(), media_type=MediaType.JSON)


@get("/docs", media_type=MediaType.HTML, include_in_schema=False)
async def docs_page() -> str:
    return _PAGE.format(assets=ASSETS_URL)


docs_assets = create_static_files_router(path=ASSETS_URL, directories=[swagger_assets_dir()], include_in_schema=False)

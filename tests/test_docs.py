"""OpenAPI document and the docs UI, served from the package with no CDN."""

from __future__ import annotations

import re

import yaml


def test_openapi_yaml_lists_every_documented_endpoint(server):
    with server.client() as client:
        response = client.get("/api/openapi.yaml")
    assert response.status_code == 200
    spec = yaml.safe_load(response.text)
    assert spec["openapi"].startswith("3.")
    paths = set(spec["paths"])
    assert {
        "/api/eval",
        "/api/eval-status/{eval_id}",
        "/api/eval-batch",
        "/api/eval/{eval_id}/logs",
        "/api/eval/{eval_id}/kill",
        "/api/queue-status",
        "/api/status",
        "/api/evaluations",
    } <= paths


def test_docs_page_uses_only_local_assets(server):
    with server.client() as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "swagger-ui" in page.text
        urls = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert urls and all(u.startswith("/") for u in urls), urls
        assert "http://" not in page.text and "https://" not in page.text
        for url in urls:
            asset = client.get(url)
            assert asset.status_code == 200 and len(asset.content) > 1000, url

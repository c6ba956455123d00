"""Sandbox templates: which runtimes a sandbox can start from, and what is in them."""

from __future__ import annotations

from urllib.parse import quote

from appliance.client.transport import Record, Transport


class TemplatesApi(Transport):
    def list_templates(self) -> list[Record]:
        """Every template (`GET /api/templates`): template_id, name, runtime, packages, ..."""
        return self.call("GET", "/api/templates")["templates"]

    def get_template(self, template_id: str) -> Record:
        """One template's details (`GET /api/templates/{id}`); ApiError 404 for an unknown id."""
        return self.call("GET", f"/api/templates/{quote(template_id, safe='')}")

"""`/api/templates`: the sandbox templates (one per language) and their details.

Any authenticated caller may read them; an anonymous one gets 401 (the service checks)."""

from __future__ import annotations

import msgspec
from litestar import Controller, get

from appliance.core.identity import Identity
from appliance.http.error_docs import errors
from appliance.services.sandboxes.templates import TemplateDetails, TemplateService, TemplateSummary


class TemplateList(msgspec.Struct, kw_only=True):
    templates: list[TemplateSummary]


class TemplateController(Controller):
    path = "/api/templates"
    tags = ["templates"]

    @get("/", summary="List sandbox templates: one per language, with its runtime image's packages")
    async def list_templates(self, templates: TemplateService, identity: Identity) -> TemplateList:
        return TemplateList(templates=await templates.list_templates(identity))

    @get("/{template_id:str}", summary="A template's details: image, environment, starter file", opt=errors(404))
    async def get_template(self, templates: TemplateService, identity: Identity, template_id: str) -> TemplateDetails:
        return await templates.get_template(identity, template_id)

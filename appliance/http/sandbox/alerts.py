"""`/api/alerts`: list, show, acknowledge and resolve the appliance's alerts.

Reading needs any API key, acknowledging and resolving `admin` (the service checks).
"""

from __future__ import annotations

import msgspec
from litestar import Controller, get, post
from litestar.params import Parameter

from appliance.core.alerts import AlertBody, alert_body
from appliance.core.identity import Identity
from appliance.http.error_docs import errors
from appliance.services.monitoring.alerts import MAX_LIST_LIMIT, AlertService


class AlertComment(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    comment: str | None = None


class AlertList(msgspec.Struct, kw_only=True):
    alerts: list[AlertBody]


class RuleBody(msgspec.Struct, kw_only=True):
    rule: str
    name: str
    severity: str
    metric: str
    threshold: float
    above: bool
    for_seconds: float
    enabled: bool


class RuleList(msgspec.Struct, kw_only=True):
    rules: list[RuleBody]


class AlertController(Controller):
    path = "/api/alerts"
    tags = ["alerts"]

    @get("/", summary="Alerts, newest first: the open ones (active, acknowledged) unless `status` says otherwise")
    async def list_alerts(
        self,
        alerts: AlertService,
        identity: Identity,
        status: str | None = None,
        severity: str | None = None,
        # The service checks the bounds (its message); the schema says them.
        limit: int = Parameter(default=100, schema_extra={"minimum": 1, "maximum": MAX_LIST_LIMIT}),
    ) -> AlertList:
        found = await alerts.list(identity, status, severity, limit)
        return AlertList(alerts=[alert_body(a) for a in found])

    @get("/rules", summary="The alert rules and their thresholds (settings alert_*)")
    async def rules(self, alerts: AlertService, identity: Identity) -> RuleList:
        return RuleList(
            rules=[
                RuleBody(
                    rule=r.rule,
                    name=r.name,
                    severity=r.severity.value,
                    metric=r.reading,
                    threshold=r.threshold,
                    above=r.above,
                    for_seconds=r.for_seconds,
                    enabled=r.enabled,
                )
                for r in alerts.list_rules(identity)
            ]
        )

    @get("/{alert_id:str}", summary="One alert", opt=errors(404))
    async def get_alert(self, alerts: AlertService, identity: Identity, alert_id: str) -> AlertBody:
        return alert_body(await alerts.get(identity, alert_id))

    @post(
        "/{alert_id:str}/acknowledge",
        status_code=200,
        summary="Acknowledge an active alert (admin)",
        opt=errors(403, 404, 409),
    )
    async def acknowledge(
        self, alerts: AlertService, identity: Identity, alert_id: str, data: AlertComment | None = None
    ) -> AlertBody:
        comment = data.comment if data is not None else None
        return alert_body(await alerts.acknowledge(identity, alert_id, comment))

    @post(
        "/{alert_id:str}/resolve", status_code=200, summary="Resolve an open alert (admin)", opt=errors(403, 404, 409)
    )
    async def resolve(
        self, alerts: AlertService, identity: Identity, alert_id: str, data: AlertComment | None = None
    ) -> AlertBody:
        comment = data.comment if data is not None else None
        return alert_body(await alerts.resolve(identity, alert_id, comment))

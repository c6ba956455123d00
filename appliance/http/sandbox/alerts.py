"""`/api/alerts`: list, show, acknowledge and resolve the appliance's alerts.

Reading needs any API key (alerts are about the appliance, not about anyone's data, and
/api/metrics shows the same figures without a key); acknowledging and resolving need
`admin`, the operators' permission.
"""

from __future__ import annotations

import msgspec
from litestar import Controller, Request, get, post

from appliance.core.alerts import AlertBody, alert_body
from appliance.core.errors import Unauthorized
from appliance.core.identity import ADMIN, Identity
from appliance.services.access.auth import require_permission


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


def _require_key(identity: Identity) -> None:
    if identity.is_anonymous:
        raise Unauthorized("Authentication required: send an X-API-Key header or a Bearer token")


def _body(alert) -> AlertBody:
    return alert_body(alert)


class AlertController(Controller):
    path = "/api/alerts"
    tags = ["alerts"]

    @get("/", summary="Alerts, newest first: the open ones (active, acknowledged) unless `status` says otherwise")
    async def list_alerts(
        self,
        request: Request,
        identity: Identity,
        status: str | None = None,
        severity: str | None = None,
        limit: int = 100,
    ) -> AlertList:
        _require_key(identity)
        alerts = await request.app.state.appliance.alerts.list(status, severity, limit)
        return AlertList(alerts=[_body(a) for a in alerts])

    @get("/rules", summary="The alert rules and their thresholds (settings alert_*)")
    async def rules(self, request: Request, identity: Identity) -> RuleList:
        _require_key(identity)
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
                for r in request.app.state.appliance.alerts.rules
            ]
        )

    @get("/{alert_id:str}", summary="One alert")
    async def get_alert(self, request: Request, identity: Identity, alert_id: str) -> AlertBody:
        _require_key(identity)
        return _body(await request.app.state.appliance.alerts.get(alert_id))

    @post("/{alert_id:str}/acknowledge", status_code=200, summary="Acknowledge an active alert (admin)")
    async def acknowledge(
        self, request: Request, identity: Identity, alert_id: str, data: AlertComment | None = None
    ) -> AlertBody:
        require_permission(identity, ADMIN)
        comment = data.comment if data is not None else None
        return _body(await request.app.state.appliance.alerts.acknowledge(alert_id, identity.name, comment))

    @post("/{alert_id:str}/resolve", status_code=200, summary="Resolve an open alert (admin)")
    async def resolve(
        self, request: Request, identity: Identity, alert_id: str, data: AlertComment | None = None
    ) -> AlertBody:
        require_permission(identity, ADMIN)
        comment = data.comment if data is not None else None
        return _body(await request.app.state.appliance.alerts.resolve(alert_id, identity.name, comment))

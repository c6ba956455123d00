"""The TUI's live feed from a real daemon (`RemoteFeed`): what it delivers, and how it
rides out the daemon going away and coming back (also as the connection banner shows it)."""

from __future__ import annotations

import asyncio
import contextlib

from appliance.client import ApplianceClient
from appliance.core.events import AlertAcknowledged, AlertEvent, Completed, EvaluationEvent, StatusUpdate
from appliance.tui.app import create_tui
from appliance.tui.backend import Backend
from appliance.tui.feeds import RemoteFeed
from appliance.tui.live import Connected, Disconnected, MetricSample
from appliance.tui.widgets.connection_banner import ConnectionBanner
from tests.support import ServerProcess, eventually_async, start_server
from tests.tui_support import wait_until

# Alerts evaluated often, and a CPU rule that is always over its threshold: an alert
# opens within a second of the start, so there is one to acknowledge.
ALERTING = {
    "APPLIANCE_ALERT_EVALUATION_SECONDS": "0.3",
    "APPLIANCE_METRICS_SAMPLE_SECONDS": "0.3",
    "APPLIANCE_ALERT_CPU_PERCENT": "0",
    "APPLIANCE_ALERT_CPU_FOR_SECONDS": "0",
}
SHORT_BACKOFF = (0.2, 0.4, 0.8, 1.6)


def restart_on_same_port(server: ServerProcess, env: dict[str, str]) -> ServerProcess:
    """A new daemon where the old one was: same data dir (so the same admin key), same port."""
    return start_server(server.data_dir, env=env, port=int(server.url.rsplit(":", 1)[1]))


@contextlib.asynccontextmanager
async def feeding(feed: RemoteFeed):
    items: list = []
    task = asyncio.create_task(feed.run(items.append))
    try:
        yield items
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def of_type(items: list, kind: type) -> list:
    return [item for item in items if isinstance(item, kind)]


async def test_remote_feed_delivers_and_rides_out_a_restart(fresh_server):
    server = fresh_server(env=ALERTING)
    key = server.admin_key
    client = ApplianceClient(server.url, api_key=key)
    feed = RemoteFeed(server.ws_url, key, open_timeout=2.0, backoff=SHORT_BACKOFF)
    second = None
    try:
        async with feeding(feed) as items:
            await eventually_async(lambda: of_type(items, Connected), interval=0.05, message="Connected")
            # one message per figure: under load the first ones may come in before the rest
            await eventually_async(
                lambda: {"cpu_usage", "queue_depth"} <= {sample.metric for sample in of_type(items, MetricSample)},
                interval=0.05,
                message="samples of cpu_usage and queue_depth",
            )
            sample = of_type(items, MetricSample)[0]
            assert sample.timestamp.endswith("Z")

            # an evaluation submitted through the API: its events arrive, up to completed
            submitted = await asyncio.to_thread(client.submit_evaluation, "python", "print('feed')")
            eval_id = submitted["eval_id"]

            def completed_of_it():
                return [e for e in of_type(items, Completed) if e.eval_id == eval_id]

            completed = (
                await eventually_async(completed_of_it, interval=0.05, message="the evaluation's completed event")
            )[0]
            assert "feed" in completed.data.output, completed
            assert completed.data.status == "completed" and completed.data.completed_at.endswith("Z")
            of_it = [e for e in of_type(items, EvaluationEvent) if e.eval_id == eval_id]
            assert isinstance(of_it[0], StatusUpdate) and of_it[0].data.status == "running", of_it

            # an alert changed through the API arrives as AlertAcknowledged
            open_alerts = await eventually_async(
                lambda: client.list_alerts(status="active"), interval=0.05, message="an active alert"
            )
            alert_id = open_alerts[0]["alert_id"]
            await asyncio.to_thread(client.acknowledge_alert, alert_id, "seen from the feed test")
            changed = await eventually_async(
                lambda: [a for a in of_type(items, AlertAcknowledged) if a.alert_id == alert_id],
                interval=0.05,
                message="AlertAcknowledged",
            )
            assert changed[0].status == "acknowledged" and changed[0].acknowledged_comment == "seen from the feed test"

            # the daemon goes away: Disconnected, retried ever later
            await asyncio.to_thread(server.stop)
            lost = await eventually_async(
                lambda: len(of_type(items, Disconnected)) >= 3 and of_type(items, Disconnected),
                interval=0.05,
                message="three Disconnected",
            )
            delays = [item.retry_in for item in lost[:3]]
            assert delays == list(SHORT_BACKOFF[:3]), delays
            assert all(item.reason for item in lost)
            connects_before = len(of_type(items, Connected))

            # a new daemon on the same data dir and port: Connected again, samples again
            second = await asyncio.to_thread(restart_on_same_port, server, ALERTING)
            await eventually_async(
                lambda: len(of_type(items, Connected)) > connects_before, interval=0.05, message="Connected again"
            )
            samples_before = len(of_type(items, MetricSample))
            await eventually_async(
                lambda: len(of_type(items, MetricSample)) > samples_before, interval=0.05, message="samples again"
            )
            assert isinstance(items[-1], Connected | MetricSample | EvaluationEvent | AlertEvent)
    finally:
        client.close()
        if second is not None:
            second.stop()


async def test_a_wrong_key_is_reported_as_refused(server):
    feed = RemoteFeed(server.ws_url, "ak_000000000000_" + "x" * 32, open_timeout=2.0, backoff=(5.0,))
    async with feeding(feed) as items:
        lost = await eventually_async(lambda: of_type(items, Disconnected), interval=0.05, message="Disconnected")
    assert "refused" in lost[0].reason, lost[0]
    assert not of_type(items, Connected)


async def test_the_banner_shows_while_the_daemon_is_away(fresh_server):
    server = fresh_server()
    key = server.admin_key
    backend = Backend(
        ApplianceClient(server.url, api_key=key),
        RemoteFeed(server.ws_url, key, open_timeout=2.0, backoff=SHORT_BACKOFF),
        server.url,
    )
    app = create_tui(backend)
    second = None
    try:
        async with app.run_test(size=(80, 24)) as pilot:

            def banner() -> ConnectionBanner:
                return app.screen.query_one(ConnectionBanner)

            await wait_until(pilot, lambda: app.live.connected)
            assert not banner().has_class("-lost") and not banner().display

            await asyncio.to_thread(server.stop)
            await wait_until(pilot, lambda: banner().has_class("-lost"))
            assert banner().display
            assert "connection lost" in str(banner().render())
            assert "retrying in" in str(banner().render())

            second = await asyncio.to_thread(restart_on_same_port, server, {})
            await wait_until(pilot, lambda: not banner().has_class("-lost"), timeout=30)
            assert not banner().display and app.live.connected
            assert str(banner().render()) == ""
    finally:
        if second is not None:
            second.stop()

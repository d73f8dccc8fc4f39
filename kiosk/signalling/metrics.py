"""Prometheus metrics of the server: live calls, set-ups, refusals by reason, devices, bridge.

One :class:`Metrics` per server process, with its own registry (two servers in
one test process never share counters). Wiring::

    metrics = Metrics()
    app[METRICS] = metrics                 # before the app starts
    ctx.metrics = metrics                  # the calls' runner counts through ctx.metrics
    metrics.bind(live_calls=runner.live_calls, ...)
    app.router.add_get("/metrics", metrics_handler)

or ``install(app)``, which does the first and last step. Counters move when
something happens (``count``, ``refusal``, ``call_ended``); gauges are read
from their owners at scrape time (``bind``), so the number shown is the
number the switchboard and the device registry hold, not a second copy of it.

Refusals carry the reason code as label (ARCHITECTURE.md principle 5); every
code of :class:`~kiosk.domain.reasons.Reason` is present from the start at 0,
so a dashboard sees a code before its first refusal.

Access: the page says how busy the prison's calls are, so it is not public.
With ``[server] metrics_token`` set, a scraper sends ``Authorization: Bearer
<token>``; without it only loopback peers are served (docs/deploy.md: the
reverse proxy must not forward ``/metrics``).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.exposition import generate_latest

from kiosk.domain.reasons import MESSAGES, EndReason, Reason
from kiosk.runtime.config import Settings
from kiosk.signalling.api.base import error_body
from kiosk.signalling.context import SETTINGS

PREFIX = "kiosk"

# The classic text format every Prometheus version reads; all our names are classic names.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Events the server counts by name (Metrics.count). A name outside this list
# still counts, under kiosk_events_total{event=...}, so a new event is never lost.
NAMED_COUNTERS: dict[str, str] = {
    "call_setups": "Calls set up: a grant was issued and the tablet told to start.",
    "call_rejoins": "Live calls a tablet dialled again (lost grant, agent restart): granted again.",
    "calls_connected": "Calls whose media connected.",
    "device_connections": "Tablet connections accepted at the device listener.",
    "devices_refused": "Tablet connections refused at the TLS handshake or hello.",
    "monitor_attachments": "Staff monitors attached to a controlled call.",
    "mails_sent": "Mails the mail server took from the outbox.",
    "mail_attempts_failed": "Attempts to send a mail that failed (it is tried again).",
    "mails_dead": "Mails given up after their last attempt or a permanent refusal.",
    "tamper_events": "Tamper events reported by tablets (USB guard).",
    "visitor_joins": "Visitors who joined a waiting room.",
}


class Metrics:
    """The server's metrics and the registry they are exposed from."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        r = self.registry
        self.counters: dict[str, Counter] = {
            name: Counter(f"{PREFIX}_{name}", doc, registry=r)
            for name, doc in NAMED_COUNTERS.items()
        }
        self.events = Counter(
            f"{PREFIX}_events", "Other server events, by name.", ["event"], registry=r
        )
        self.refusals = Counter(
            f"{PREFIX}_refusals", "Refusals, by reason code.", ["reason"], registry=r
        )
        self.calls_ended = Counter(
            f"{PREFIX}_calls_ended", "Calls ended, by end reason.", ["reason"], registry=r
        )
        for reason in Reason:
            self.refusals.labels(reason=reason.value)
        for end in EndReason:
            self.calls_ended.labels(reason=end.value)
        self.live_calls = Gauge(f"{PREFIX}_live_calls", "Calls in progress.", registry=r)
        self.devices_connected = Gauge(
            f"{PREFIX}_devices_connected", "Tablets connected to the device listener.", registry=r
        )
        self.bridge_calls = Gauge(
            f"{PREFIX}_bridge_calls", "Controlled calls running through the bridge.", registry=r
        )
        self.bridge_monitors = Gauge(
            f"{PREFIX}_bridge_monitors", "Staff monitors attached to bridged calls.", registry=r
        )
        self.mail_outbox = Gauge(
            f"{PREFIX}_mail_outbox",
            "Mails in the outbox, by state (pending, sent, dead: given up, see kiosk admin mail).",
            ["state"],
            registry=r,
        )
        self.bridge_consumers = Gauge(
            f"{PREFIX}_bridge_consumers",
            "Outgoing media tracks the bridge forwards to (legs and monitors).",
            registry=r,
        )

    # --- counters ------------------------------------------------------------------

    def count(self, name: str, amount: float = 1) -> None:
        """One more ``name`` event (``call_setups``, ``calls_connected``, …)."""
        counter = self.counters.get(name)
        if counter is not None:
            counter.inc(amount)
        else:
            self.events.labels(event=name).inc(amount)

    def refusal(self, reason: Reason) -> None:
        """A refusal with this reason code (API, device or visitor side)."""
        self.refusals.labels(reason=Reason(reason).value).inc()

    def call_ended(self, reason: EndReason) -> None:
        self.calls_ended.labels(reason=EndReason(reason).value).inc()

    # --- gauges --------------------------------------------------------------------

    def bind(
        self,
        *,
        live_calls: Callable[[], float] | None = None,
        devices_connected: Callable[[], float] | None = None,
        bridge_calls: Callable[[], float] | None = None,
        bridge_monitors: Callable[[], float] | None = None,
        bridge_consumers: Callable[[], float] | None = None,
    ) -> None:
        """Read these gauges from their owners at scrape time."""
        pairs: Iterable[tuple[Gauge, Callable[[], float] | None]] = (
            (self.live_calls, live_calls),
            (self.devices_connected, devices_connected),
            (self.bridge_calls, bridge_calls),
            (self.bridge_monitors, bridge_monitors),
            (self.bridge_consumers, bridge_consumers),
        )
        for gauge, source in pairs:
            if source is not None:
                gauge.set_function(_safe(source))

    def bind_outbox(self, counts: Callable[[], Mapping[str, int]]) -> None:
        """Read the outbox's mails by state from its worker at scrape time."""
        for state in ("pending", "sent", "dead"):
            gauge = self.mail_outbox.labels(state=state)
            gauge.set_function(_safe(lambda state=state: counts().get(state, 0)))  # type: ignore[misc]

    # --- reading -------------------------------------------------------------------

    def exposition(self) -> bytes:
        """The registry in Prometheus text format."""
        return generate_latest(self.registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 if absent): for tests and the status line."""
        sample = self.registry.get_sample_value(name, labels or None)
        return 0.0 if sample is None else sample


def _safe(source: Callable[[], float]) -> Callable[[], float]:
    # A scrape must never fail because an owner is half shut down.
    def read() -> float:
        try:
            return float(source())
        except Exception:
            return float("nan")

    return read


METRICS = web.AppKey("metrics", Metrics)


def install(app: web.Application, metrics: Metrics | None = None) -> Metrics:
    """Put a Metrics on ``app`` and serve it at ``GET /metrics``."""
    metrics = metrics if metrics is not None else Metrics()
    app[METRICS] = metrics
    app.router.add_get("/metrics", metrics_handler)
    return metrics


def _loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return remote.startswith("/")  # a unix socket peer is local by construction


def _refuse(status: int, reason: Reason) -> web.Response:
    return web.json_response(error_body(reason, MESSAGES[reason]), status=status)


def _token(app: web.Application) -> str:
    settings: Settings | None = app.get(SETTINGS)
    if settings is None:
        return ""
    return getattr(settings.server, "metrics_token", "") or ""


async def metrics_handler(request: web.Request) -> web.StreamResponse:
    """``GET /metrics``: the exposition format, to loopback or a bearer-token scraper."""
    metrics = request.app.get(METRICS)
    if metrics is None:
        return _refuse(404, Reason.NOT_FOUND)
    token = _token(request.app)
    if token:
        given = request.headers.get("Authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            response = _refuse(401, Reason.NOT_AUTHENTICATED)
            response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    elif not _loopback(request.remote):
        return _refuse(403, Reason.FORBIDDEN_ROLE)
    body = metrics.exposition()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


__all__: list[Any] = ["METRICS", "NAMED_COUNTERS", "Metrics", "install", "metrics_handler"]

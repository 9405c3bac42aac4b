"""The gateway's Prometheus metrics, in a registry of its own (one per app)."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.clients = Gauge("gateway_ws_clients", "WebSocket clients connected", registry=r)
        self.received = Counter("gateway_pubsub_messages_received", "Pub/Sub messages received, by kind",
                                ["kind"], registry=r)
        self.malformed = Counter("gateway_pubsub_messages_malformed", "Pub/Sub messages ignored as malformed",
                                 ["kind"], registry=r)
        self.relayed = Counter("gateway_messages_relayed", "Messages queued to WebSocket clients, by kind",
                               ["kind"], registry=r)
        self.dropped = Counter("gateway_ws_clients_dropped", "WebSocket clients closed for falling behind",
                               registry=r)
        self.recovered = Counter("gateway_bang_events_recovered",
                                 "Bang events read from PostgreSQL because their Pub/Sub message had not come",
                                 registry=r)
        self.horizon_reads = Counter("gateway_bang_horizon_reads",
                                     "Reads of bang_events that advanced (or kept) the resume cursor", registry=r)
        self.backfills = Counter("gateway_backfill_requests", "Backfill requests served", registry=r)
        self.proxied = Counter("gateway_proxy_requests", "Requests proxied to the orchestrator, by outcome",
                               ["outcome"], registry=r)

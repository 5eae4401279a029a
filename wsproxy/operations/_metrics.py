"""Prometheus metrics for the proxied streams, kept off the per-message path.

Theory of operation. A stream counts its own messages and bytes as plain ints on its stats record
(wsproxy/stream/_core.py's StreamStats, counted in place while the stream runs). Nothing here runs per message: the metric
families are touched when a stream starts (the open gauge), when it ends (its remaining counts, its
close code, its duration) and on a coarse tick (every `tick_seconds`), when the counts that the open
streams gathered since the last publication are added, so a stream that lasts for hours still shows
up on a dashboard while it runs. prometheus_client takes a lock per update, so updates per stream,
never per message, are what keeps the cost flat.

With several worker processes, prometheus_client's multiprocess mode (the PROMETHEUS_MULTIPROC_DIR
environment variable, set before prometheus_client is imported) keeps each worker's values in a file
of that directory; the `wsproxy` command's metrics listener adds them up. The open-streams gauge is a
`livesum`: only live workers count.

The metric families are made once per registry and process (`metrics_for`): several middleware
instances in one process share them, as a registry allows each name once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

TICK_SECONDS = 5.0
# Seconds: a unary call takes milliseconds, a subscription hours.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400)
# What a stream whose core recorded no close code is counted as (RFC 6455: closed abnormally).
NO_CLOSE_FRAME = 1006


class LiveCounts(Protocol):
    """What metrics read from a stream's stats record (StreamStats), whose counts grow while it runs."""

    @property
    def messages_in(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def messages_out(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def close_code(self) -> int | None: ...


class StreamMetrics:
    """The wsproxy_* metric families and the open streams whose counts are not yet published."""

    def __init__(
        self, registry: CollectorRegistry | None = None, *, tick_seconds: float = TICK_SECONDS
    ) -> None:
        _require_prometheus_client()
        from prometheus_client import REGISTRY, Counter, Gauge, Histogram

        registry = REGISTRY if registry is None else registry
        self.tick_seconds = tick_seconds
        self.streams_open = Gauge(
            "wsproxy_streams_open",
            "WebSocket streams open now",
            registry=registry,
            multiprocess_mode="livesum",
        )
        self.streams = Counter(
            "wsproxy_streams", "WebSocket streams ended, by close code", ["code"], registry=registry
        )
        self.refused = Counter(
            "wsproxy_handshakes_refused",
            "WebSocket handshakes refused before accept, by HTTP status",
            ["status"],
            registry=registry,
        )
        messages = Counter(
            "wsproxy_messages",
            "WebSocket messages: in = client to app, out = app to client",
            ["direction"],
            registry=registry,
        )
        payload = Counter(
            "wsproxy_bytes",
            "WebSocket message payload bytes: in = client to app, out = app to client",
            ["direction"],
            registry=registry,
        )
        self.duration = Histogram(
            "wsproxy_stream_duration_seconds",
            "How long WebSocket streams lasted, accept to close",
            buckets=DURATION_BUCKETS,
            registry=registry,
        )
        # Label lookups done once: the children are what the updates touch.
        self.messages_in, self.messages_out = messages.labels("in"), messages.labels("out")
        self._by_code: dict[int, Any] = {}
        self.bytes_in, self.bytes_out = payload.labels("in"), payload.labels("out")
        # id(stream) -> (stream, start time, what was published of it: messages in/out, bytes in/out)
        self._open: dict[int, tuple[LiveCounts, float, list[int]]] = {}
        self._tick: asyncio.TimerHandle | None = None
        self._tick_loop: asyncio.AbstractEventLoop | None = None

    def handshake_refused(self, status: int) -> None:
        self.refused.labels(str(status)).inc()

    def stream_started(self, stream: LiveCounts) -> None:
        """A stream was accepted: count it open, and publish its counts on the tick until it ends."""
        self.streams_open.inc()
        self._open[id(stream)] = (stream, time.monotonic(), [0, 0, 0, 0])
        self._ensure_tick()

    def stream_ended(self, stream: LiveCounts) -> None:
        entry = self._open.pop(id(stream), None)
        if entry is None:
            return  # not started here, or ended twice
        self.streams_open.dec()
        self._publish(stream, entry[2])
        code = stream.close_code if stream.close_code is not None else NO_CLOSE_FRAME
        child = self._by_code.get(code)
        if child is None:  # a label lookup takes the family's lock: once per code, not per stream
            child = self._by_code[code] = self.streams.labels(str(code))
        child.inc()
        self.duration.observe(time.monotonic() - entry[1])

    def publish_open(self) -> None:
        """Add what the open streams counted since their last publication (the tick does this)."""
        for stream, _, published in list(self._open.values()):
            self._publish(stream, published)

    def _publish(self, stream: LiveCounts, published: list[int]) -> None:
        counts = (stream.messages_in, stream.messages_out, stream.bytes_in, stream.bytes_out)
        children = (self.messages_in, self.messages_out, self.bytes_in, self.bytes_out)
        for index, (count, child) in enumerate(zip(counts, children, strict=True)):
            delta = count - published[index]
            if delta > 0:
                child.inc(delta)
                published[index] = count

    def _ensure_tick(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a synchronous caller): counts are published at the end only
        if self._tick is None or self._tick_loop is not loop or self._tick.cancelled():
            self._tick_loop = loop
            self._tick = loop.call_later(self.tick_seconds, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self.publish_open()
        if self._open:
            self._ensure_tick()


_lock = threading.Lock()
_by_registry: dict[int, tuple[object, StreamMetrics]] = {}


def metrics_for(registry: CollectorRegistry | None = None) -> StreamMetrics:
    """The process's StreamMetrics for `registry` (prometheus_client's default one if None)."""
    _require_prometheus_client()
    if registry is None:
        from prometheus_client import REGISTRY

        registry = REGISTRY
    with _lock:
        entry = _by_registry.get(id(registry))
        if entry is None or entry[0] is not registry:
            entry = (registry, StreamMetrics(registry))
            _by_registry[id(registry)] = entry
        return entry[1]


def _require_prometheus_client() -> None:
    try:
        import prometheus_client  # noqa: F401
    except ImportError as exc:  # depends on the install
        raise ImportError("metrics need prometheus_client: pip install 'wsproxy[metrics]'") from exc

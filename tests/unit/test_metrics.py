"""StreamMetrics without a server: what a stream's start, tick and end publish, in its own registry."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry

from wsproxy.operations._metrics import StreamMetrics, metrics_for


@dataclass(eq=True)  # eq: unhashable, as a dataclass may well be
class Stream:
    """A stand-in for a live StreamStats."""

    messages_in: int = 0
    messages_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    close_code: int | None = None


def value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    found = registry.get_sample_value(name, labels)
    return 0.0 if found is None else found


def figures(registry: CollectorRegistry) -> dict[str, float]:
    return {
        "open": value(registry, "wsproxy_streams_open"),
        "in": value(registry, "wsproxy_messages_total", direction="in"),
        "out": value(registry, "wsproxy_messages_total", direction="out"),
        "bytes_in": value(registry, "wsproxy_bytes_total", direction="in"),
        "bytes_out": value(registry, "wsproxy_bytes_total", direction="out"),
    }


def test_a_stream_is_published_at_its_end_only() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    record = Stream()
    metrics.stream_started(record)
    assert figures(registry) == {"open": 1, "in": 0, "out": 0, "bytes_in": 0, "bytes_out": 0}
    record.messages_in, record.bytes_in, record.messages_out, record.bytes_out = 3, 30, 2, 200
    assert figures(registry)["in"] == 0  # nothing per message
    record.close_code = 1000
    metrics.stream_ended(record)
    assert figures(registry) == {"open": 0, "in": 3, "out": 2, "bytes_in": 30, "bytes_out": 200}
    assert value(registry, "wsproxy_streams_total", code="1000") == 1
    assert value(registry, "wsproxy_stream_duration_seconds_count") == 1
    assert value(registry, "wsproxy_stream_duration_seconds_bucket", le="5.0") == 1
    metrics.stream_ended(record)  # a second end changes nothing
    assert value(registry, "wsproxy_streams_total", code="1000") == 1


def test_a_stream_without_a_close_frame_counts_as_1006() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    record = Stream()
    metrics.stream_started(record)
    metrics.stream_ended(record)
    assert value(registry, "wsproxy_streams_total", code="1006") == 1


def test_refusals_by_status() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry)
    for status in (403, 401, 401, 503):
        metrics.handshake_refused(status)
    assert [value(registry, "wsproxy_handshakes_refused_total", status=s) for s in ("401", "403", "503")] == [
        2,
        1,
        1,
    ]


async def test_a_long_stream_is_published_on_the_tick_without_counting_twice() -> None:
    registry = CollectorRegistry()
    metrics = StreamMetrics(registry, tick_seconds=0.05)
    record = Stream()
    metrics.stream_started(record)
    record.messages_in, record.bytes_in = 5, 50
    await asyncio.sleep(0.2)
    assert figures(registry)["in"] == 5
    assert figures(registry)["bytes_in"] == 50
    record.messages_in, record.bytes_in, record.messages_out = 7, 70, 1
    record.close_code = 1000
    metrics.stream_ended(record)
    assert figures(registry) == {"open": 0, "in": 7, "out": 1, "bytes_in": 70, "bytes_out": 0}


def test_metrics_for_shares_one_set_of_families_per_registry() -> None:
    registry = CollectorRegistry()
    assert metrics_for(registry) is metrics_for(registry)
    assert metrics_for(CollectorRegistry()) is not metrics_for(registry)
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        StreamMetrics(registry)  # why metrics_for exists


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"metrics": "yes"}, "metrics must be True, False or a prometheus_client CollectorRegistry"),
        ({"access_log": "on"}, "access_log must be True or False"),
    ],
)
def test_bad_option_values_are_refused_at_construction(options: dict[str, object], message: str) -> None:
    from wsproxy import WebSocketProxyMiddleware

    async def app(scope: object, receive: object, send: object) -> None:
        pass

    with pytest.raises(TypeError, match=message):
        WebSocketProxyMiddleware(app, **options)  # type: ignore[arg-type]

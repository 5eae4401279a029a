"""Trace context through the proxy: an app instrumented with OpenTelemetry's ASGI middleware, served by
real uvicorn behind wsproxy, records each WebSocket call as one HTTP server span under the client's
trace, with the call's HTTP status (and so its close code) on the span."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from websockets.asyncio.client import connect

from tests.support.servers import Running, drain, serve_on
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Receive, Scope, Send

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Echoes each request line; /missing answers 404 after reading the body."""
    status = 404 if scope["path"] == "/missing" else 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body and status == 200:
            await send({"type": "http.response.body", "body": body, "more_body": True})
        if not message.get("more_body", False):
            break
    tail = b'{"error": "not found"}\n' if status == 404 else b""
    await send({"type": "http.response.body", "body": tail, "more_body": False})


class Exporter(InMemorySpanExporter):
    """Keeps the finished spans and lets a test wait for them: a client sees the close before the
    server's app has returned (legacy websockets completes the closing handshake inside the app's send)."""

    def __init__(self) -> None:
        super().__init__()
        self._changed = asyncio.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self._changed.set()
        return result

    async def finished(self, count: int) -> tuple[ReadableSpan, ...]:
        """The finished spans, once there are at least `count` (in-loop servers: same thread, same loop)."""
        while len(spans := self.get_finished_spans()) < count:
            self._changed.clear()
            await asyncio.wait_for(self._changed.wait(), timeout=30)
        return spans


@pytest.fixture
async def traced(server_impl: str) -> AsyncIterator[tuple[Running, Exporter]]:
    exporter = Exporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # exclude_spans: no span per body chunk, only the one for the call.
    instrumented: Any = OpenTelemetryMiddleware(
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    async with serve_on(server_impl, WebSocketProxyMiddleware(instrumented)) as running:
        yield running, exporter
    provider.shutdown()


async def call(url: str, lines: list[str]) -> tuple[list[str | bytes], int | None]:
    async with connect(url, additional_headers={"traceparent": TRACEPARENT, "baggage": "tenant=acme"}) as ws:
        for line in lines:
            await ws.send(line)
        await ws.send("")
        frames, code, _ = await drain(ws)
    return frames, code


def status_of(attributes: Any) -> object:
    # The HTTP semantic conventions' old and stable attribute names (OTEL_SEMCONV_STABILITY_OPT_IN).
    return attributes.get("http.status_code", attributes.get("http.response.status_code"))


async def test_each_call_is_one_server_span_in_the_clients_trace_with_its_status(
    traced: tuple[Running, Exporter],
) -> None:
    running, exporter = traced
    assert await call(running.ws + "/chat?method=POST", ['{"n": 1}', '{"n": 2}']) == (
        ['{"n": 1}', '{"n": 2}'],
        1000,
    )
    assert (await call(running.ws + "/missing?method=POST", ['{"n": 3}']))[1] == 4404

    spans = sorted(await exporter.finished(2), key=lambda span: span.start_time or 0)  # in call order
    assert [span.kind for span in spans] == [SpanKind.SERVER, SpanKind.SERVER]  # one per call, nothing else
    assert [format(span.context.trace_id, "032x") for span in spans] == [TRACE_ID, TRACE_ID]
    assert [span.parent is not None and format(span.parent.span_id, "016x") for span in spans] == [
        CLIENT_SPAN_ID,
        CLIENT_SPAN_ID,
    ]
    assert [span.attributes is not None and status_of(span.attributes) for span in spans] == [200, 404]
    assert [span.attributes is not None and span.attributes.get("http.method") for span in spans] == [
        "POST",
        "POST",
    ]


async def test_without_the_headers_in_the_allowlist_the_trace_is_lost(server_impl: str) -> None:
    """The control: the default allowlist is what carries the trace (a replaced list drops it)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumented: Any = OpenTelemetryMiddleware(
        app, tracer_provider=provider, exclude_spans=["receive", "send"]
    )
    proxy = WebSocketProxyMiddleware(instrumented, forwarded_headers=["host"])
    async with serve_on(server_impl, proxy) as running:
        assert (await call(running.ws + "/chat?method=POST", [json.dumps({"n": 1})]))[1] == 1000
    provider.shutdown()
    (span,) = exporter.get_finished_spans()
    assert format(span.context.trace_id, "032x") != TRACE_ID
    assert span.parent is None

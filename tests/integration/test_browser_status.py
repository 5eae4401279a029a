"""The browser module's side of the status contract (wsproxy.status.v1), in headless chromium.

A FastAPI app behind a real wsproxy on uvicorn: an endpoint raising HTTPException(403, "bad token")
must raise HTTPStatusError before any line, on a single socket and on mux, server-streaming and bidi,
every time; a 200 call's status and headers arrive before its first line; `status: false` and a proxy
that does not speak the contract give the lines-then-close-code behaviour.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse

from tests.integration.test_browser import CHROMIUM, browser_page, with_module_page
from tests.support.servers import serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Message, Receive, Scope, Send

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM}: run scripts/ensure-chromium"
)

STATUS_SUBPROTOCOL = "wsproxy.status.v1"
RUNS = 100
LONG_BODY_LINES = 100  # about 100 KiB: more than a mux call's 64 KiB of credit
FORBIDDEN = {"name": "HTTPStatusError", "status": 403, "code": 4403, "body": {"detail": "bad token"}}


def service() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/guarded")
    async def guarded() -> StreamingResponse:
        raise HTTPException(status_code=403, detail="bad token")

    @app.post("/v1/guarded-chat")
    async def guarded_chat() -> StreamingResponse:
        raise HTTPException(status_code=403, detail="bad token")

    @app.get("/v1/forbidden-at-length")
    async def forbidden_at_length() -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            for n in range(LONG_BODY_LINES):
                yield json.dumps({"line": n, "pad": "x" * 1000}).encode() + b"\n"

        return StreamingResponse(lines(), status_code=403, media_type="application/x-ndjson")

    @app.get("/v1/hello")
    async def hello() -> dict[str, str]:
        return {"hello": "world"}

    @app.post("/v1/chat")
    async def chat(request: Request) -> StreamingResponse:
        async def echoes() -> AsyncIterator[bytes]:
            buffer = b""
            async for chunk in request.stream():
                buffer += chunk
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    yield line + b"\n"

        headers = {"x-request-id": "r-1", "set-cookie": "session=s; HttpOnly"}
        return StreamingResponse(echoes(), media_type="application/x-ndjson", headers=headers)

    return app


@dataclass
class Handshakes:
    """What the browser offered and asked for, as the proxy received it; `older` makes the proxy one
    that predates the contract: it never sees the wsproxy.status.v1 offer nor OPEN's "status"."""

    older: bool = False
    offers: list[list[str]] = field(default_factory=list)
    opens: list[dict[str, Any]] = field(default_factory=list)

    def wrap(self, app: ASGIApp) -> ASGIApp:
        async def recorded(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "websocket":
                await app(scope, receive, send)
                return
            offered = [part.strip() for item in scope.get("subprotocols", ()) for part in item.split(",")]
            self.offers.append(offered)
            mux = "wsproxy.mux.v1" in offered
            if self.older:
                scope = dict(scope, subprotocols=[item for item in offered if item != STATUS_SUBPROTOCOL])
                scope["headers"] = [
                    (k, v) for k, v in scope["headers"] if k.lower() != b"sec-websocket-protocol"
                ]

            async def receive_opens() -> Message:
                message = await receive()
                data = message.get("bytes")
                if mux and message["type"] == "websocket.receive" and data and data[0] == 0x01:  # OPEN
                    body = json.loads(data[5:])
                    self.opens.append(dict(body))
                    if self.older:
                        body.pop("status", None)
                        message = dict(message, bytes=data[:5] + json.dumps(body).encode())
                return message

            await app(scope, receive_opens, send)

        return recorded


async def with_trailers(scope: Scope, receive: Receive, send: Send) -> None:
    """One line, then HTTP trailers when the request says it can carry them (ASGI's extension)."""
    trailers = "http.response.trailers" in scope.get("extensions", {})
    start = {"type": "http.response.start", "status": 200, "trailers": trailers}
    await send({**start, "headers": [(b"content-type", b"application/x-ndjson")]})
    await send({"type": "http.response.body", "body": b'{"n": 1}\n', "more_body": True})
    await send({"type": "http.response.body", "body": b""})
    if trailers:
        trailer = {"type": "http.response.trailers", "headers": [(b"grpc-trailer-x", b"v")]}
        await send({**trailer, "more_trailers": False})


def proxied(handshakes: Handshakes) -> ASGIApp:
    api = service()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        route = with_trailers if scope["path"] == "/v1/trailers" else api
        await route(scope, receive, send)

    return with_module_page(handshakes.wrap(cast(ASGIApp, WebSocketProxyMiddleware(app))))


# Runs inside the page: RUNS calls of each kind to the 403 endpoint. Bidi calls send before the socket
# opens, then once more: at once, once it opened, a millisecond later, or once the call has ended
# unread (every fourth run: that send must throw), and again after reading to the end. A send either
# goes out or throws the call's error, whichever way the race goes.
FORBIDDEN_RUNS_JS = """
async (runs) => {
  const m = await import("/wsproxy.js");
  const describe = (e) => e instanceof m.HTTPStatusError
    ? { name: e.name, status: e.status, code: e.code, body: e.body }
    : { name: e?.name ?? null, message: String(e?.message ?? e) };
  const conn = m.openMux("/");
  await conn.opened;
  const kinds = {
    single: () => m.serverStream("/v1/guarded"),
    singleBidi: () => m.bidi("/v1/guarded-chat", { method: "POST" }),
    mux: () => conn.serverStream("/v1/guarded"),
    muxBidi: () => conn.bidi("/v1/guarded-chat", { method: "POST" }),
  };
  const out = {};
  for (const [kind, open] of Object.entries(kinds)) {
    out[kind] = [];
    for (let i = 0; i < runs; i++) {
      const call = open();
      const lines = [];
      const sends = [];
      const trySend = (message) => {
        try { call.send(message); sends.push("sent"); } catch (e) { sends.push(describe(e)); }
      };
      const bidi = kind.endsWith("Bidi");
      if (bidi) {
        trySend({ text: "before open" });
        if (i % 4 === 1) await call.opened;
        if (i % 4 === 2) await new Promise((resolve) => setTimeout(resolve, 1));
        if (i % 4 === 3) await Promise.race([call.status, new Promise((resolve) => setTimeout(resolve, 2000))]);
        trySend({ text: "racing" });
      }
      let error = null;
      try {
        for await (const line of call) lines.push(line);
      } catch (e) {
        error = describe(e);
      }
      const run = { lines, error };
      if (bidi) {
        trySend({ text: "after the end" });
        run.sends = sends;
        run.status = call.httpStatus;
        run.initial = await call.initialMetadata().then(() => "resolved", describe);
        run.contentType = call.headers.find(([name]) => name === "content-type")?.[1] ?? null;
      }
      out[kind].push(run);
    }
  }
  out.unary = await m.unary("/v1/guarded").then((value) => ({ value }), describe);     // result()
  out.muxUnary = await conn.unary("/v1/guarded").then((value) => ({ value }), describe);
  out.openCalls = conn.openCalls;
  conn.close();
  return out;
}
"""


async def test_a_403_raises_before_any_line_single_socket_and_mux_100_of_100() -> None:
    handshakes = Handshakes()
    async with serve(proxied(handshakes)) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(FORBIDDEN_RUNS_JS, RUNS)
    for kind in ("single", "mux"):
        assert out[kind] == [{"lines": [], "error": FORBIDDEN}] * RUNS, kind
    for kind in ("singleBidi", "muxBidi"):
        runs = out[kind]
        assert len(runs) == RUNS
        for i, run in enumerate(runs):
            assert (run["lines"], run["error"], run["initial"]) == ([], FORBIDDEN, FORBIDDEN), kind
            assert (run["status"], run["contentType"]) == (403, "application/json")
            before, racing, after = run["sends"]
            assert (before, after) == ("sent", FORBIDDEN)  # queued before the socket opened; the end's error
            assert racing == FORBIDDEN if i % 4 == 3 else racing in ("sent", FORBIDDEN)
    assert out["unary"] == out["muxUnary"] == FORBIDDEN
    assert out["openCalls"] == 0
    # Every single call offered the contract; every mux call asked for it.
    calls = 2 * RUNS + 1  # single socket, and likewise on mux
    assert sorted(map(tuple, handshakes.offers)) == [("wsproxy.mux.v1",)] + [(STATUS_SUBPROTOCOL,)] * calls
    assert len(handshakes.opens) == calls
    assert all(open_["status"] is True for open_ in handshakes.opens)


# Runs inside the page: a 200 bidi call's status and headers, known before any line (the app sends its
# first line only after the client's first message, sent once initialMetadata() resolved). A line shaped
# like an error body is a message at once: the status already said it is not an error.
HEADERS_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const conn = m.openMux("/");
  const out = {};
  for (const [kind, open] of [["single", (o) => m.openCall("/v1/chat", o)], ["mux", (o) => conn.openCall("/v1/chat", o)]]) {
    const call = open({ method: "POST", token: kind === "single" ? "tok" : undefined });
    const before = { status: call.httpStatus, headers: call.headers };
    const initial = await call.initialMetadata();
    call.send({ code: 3, message: "a message, not an error" });
    const held = new Promise((resolve) => setTimeout(() => resolve("held back"), 10000));
    const first = await Promise.race([call.next().then((r) => r.value), held]);
    call.send({ result: { n: 1 } });
    call.closeSend();
    const rest = [];
    for await (const line of call) rest.push(line);
    out[kind] = { before, initial, status: call.httpStatus, headers: call.headers, first, rest,
                  trailers: call.trailers, subprotocol: call.subprotocol, outcome: (await call.status).code };
  }
  conn.close();
  return out;
}
"""


async def test_a_200_calls_status_and_headers_arrive_before_its_first_line() -> None:
    handshakes = Handshakes()
    async with serve(proxied(handshakes)) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(HEADERS_JS)
    headers = [["content-type", "application/x-ndjson"], ["x-request-id", "r-1"]]
    for kind, subprotocol in (("single", STATUS_SUBPROTOCOL), ("mux", "wsproxy.mux.v1")):
        call = out[kind]
        assert call["before"] == {"status": None, "headers": []}
        assert sorted(call["initial"]) == sorted(call["headers"]) == headers  # no set-cookie
        assert (call["status"], call["subprotocol"], call["outcome"]) == (200, subprotocol, 1000)
        assert call["first"] == {"code": 3, "message": "a message, not an error"}
        assert (call["rest"], call["trailers"]) == ([{"n": 1}], [])
    assert ["Bearer", "tok", STATUS_SUBPROTOCOL] in handshakes.offers


# Runs inside the page: the 403 endpoint with status: false, and against a proxy that does not speak
# the contract: the error body arrives as a message (FastAPI's {"detail": ...} is not shaped like a
# gRPC status), then the close raises HTTPStatusError carrying it.
LINES_THEN_CLOSE_JS = """
async ({ token, status }) => {
  const m = await import("/wsproxy.js");
  const describe = (e) => e instanceof m.HTTPStatusError
    ? { name: e.name, status: e.status, code: e.code, body: e.body }
    : { name: e?.name ?? null, code: e?.code ?? null };
  const conn = m.openMux("/", { token });
  const out = {};
  const options = { method: "POST", token, status };
  for (const [kind, call] of [["single", m.openCall("/v1/guarded-chat", options)], ["mux", conn.openCall("/v1/guarded-chat", options)]]) {
    const lines = [];
    let error = null;
    try {
      call.closeSend();
      for await (const line of call) lines.push(line);
    } catch (e) {
      error = describe(e);
    }
    const initial = await call.initialMetadata().then((headers) => headers, describe);
    out[kind] = { lines, error, status: call.httpStatus, headers: call.headers, initial, subprotocol: call.subprotocol };
  }
  conn.close();
  return out;
}
"""
TODAYS = {
    "lines": [{"detail": "bad token"}],
    "error": FORBIDDEN,
    "status": None,
    "headers": [],
    "initial": FORBIDDEN,
}


async def test_status_false_gives_lines_then_the_close_code() -> None:
    handshakes = Handshakes()
    async with serve(proxied(handshakes)) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(LINES_THEN_CLOSE_JS, {"token": None, "status": False})
    assert out["single"] == {**TODAYS, "subprotocol": ""}
    assert out["mux"] == {**TODAYS, "subprotocol": "wsproxy.mux.v1"}
    assert sorted(handshakes.offers) == [[], ["wsproxy.mux.v1"]]  # nothing but what today's client offers
    assert handshakes.opens == [{"path": "/v1/guarded-chat?method=POST"}]


async def test_against_a_proxy_that_does_not_select_the_subprotocol() -> None:
    handshakes = Handshakes(older=True)
    async with serve(proxied(handshakes)) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(LINES_THEN_CLOSE_JS, {"token": "tok", "status": True})
        # Without a token such a proxy selects no subprotocol, and browsers refuse a handshake that
        # selects none of those offered: only status: false opens (docs/clients.md says so).
        refused = await page.evaluate(
            """async () => {
              const m = await import("/wsproxy.js");
              const outcome = async (options) => {
                try { return await m.unary("/v1/hello", undefined, options); }
                catch (e) { return { name: e.name, code: e.code }; }
              };
              return [await outcome({}), await outcome({ status: false })];
            }"""
        )
    assert out["single"] == {**TODAYS, "subprotocol": "Bearer"}
    assert out["mux"] == {**TODAYS, "subprotocol": "wsproxy.mux.v1"}
    assert sorted(handshakes.offers[:2]) == [
        ["Bearer", "tok", "wsproxy.mux.v1"],
        ["Bearer", "tok", STATUS_SUBPROTOCOL],
    ]
    assert handshakes.opens == [{"path": "/v1/guarded-chat?method=POST", "status": True}]
    assert refused == [{"name": "ConnectError", "code": 1006}, {"hello": "world"}]


# Runs inside the page: an app that sends HTTP trailers when the request can carry them.
TRAILERS_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const conn = m.openMux("/");
  const out = {};
  for (const status of [true, false]) {
    for (const [kind, call] of [["single", m.openCall("/v1/trailers", { status })], ["mux", conn.openCall("/v1/trailers", { status })]]) {
      call.closeSend();
      const lines = [];
      for await (const line of call) lines.push(line);
      out[`${kind} ${status}`] = { lines, trailers: call.trailers, code: (await call.status).code };
    }
  }
  conn.close();
  return out;
}
"""


async def test_trailers_arrive_after_the_last_line() -> None:
    async with serve(proxied(Handshakes())) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(TRAILERS_JS)
    with_trailers = {"lines": [{"n": 1}], "trailers": [["grpc-trailer-x", "v"]], "code": 1000}
    assert out["single true"] == out["mux true"] == with_trailers
    assert out["single false"] == out["mux false"] == {**with_trailers, "trailers": []}


# Runs inside the page: an error body larger than a mux call's credit, and a caller that reads no line,
# only awaits initialMetadata(): the body is no message, so it is read as it comes and the error arrives.
LONG_ERROR_BODY_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const conn = m.openMux("/");
  const out = {};
  for (const [kind, call] of [["single", m.openCall("/v1/forbidden-at-length")], ["mux", conn.openCall("/v1/forbidden-at-length")]]) {
    call.closeSend();
    const stuck = new Promise((resolve) => setTimeout(() => resolve("stuck"), 10000));
    out[kind] = await Promise.race([
      call.initialMetadata().then(() => "resolved", (e) => ({ name: e.name, status: e.status, code: e.code, body: e.body })),
      stuck,
    ]);
  }
  conn.close();
  return out;
}
"""


async def test_an_error_body_past_the_mux_credit_does_not_hold_the_call_up() -> None:
    async with serve(proxied(Handshakes())) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(LONG_ERROR_BODY_JS)
    for kind in ("single", "mux"):
        error = out[kind]
        assert isinstance(error, dict), f"{kind}: {error}"
        assert (error["name"], error["status"], error["code"]) == ("HTTPStatusError", 403, 4403), kind
        lines = error["body"].split("\n")  # several JSON lines are not one JSON value: the text
        assert [json.loads(line)["line"] for line in lines] == list(range(LONG_BODY_LINES))

"""The browser side in a real browser: Debian's headless chromium driven by Playwright.

The demo page runs all five RPCs against the real demo (gRPC server, gateway, wsproxy); the browser
module's call kinds and error outcomes are checked from inside the page. The demo test saves a
screenshot: into docs/images/demo.png when WSPROXY_UPDATE_SCREENSHOT=1, else into a temp dir.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from playwright.async_api import Page, async_playwright, expect

from example_service.app import demo
from tests.support.ndjson_service import Observed, ndjson_app, observed_app
from tests.support.servers import Running, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import ASGIApp, Receive, Scope, Send

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "wsproxy" / "static" / "wsproxy.js"
SCREENSHOT = REPO / "docs" / "images" / "demo.png"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(), reason=f"no chromium at {CHROMIUM}: run scripts/ensure-chromium"
)


@contextlib.asynccontextmanager
async def browser_page(url: str) -> AsyncIterator[Page]:
    """A page of headless chromium at `url`; any uncaught page error fails the test."""
    errors: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 760})
            page.on("pageerror", lambda error: errors.append(str(error)))
            await page.goto(url)
            yield page
        finally:
            await browser.close()
    assert errors == []


@contextlib.asynccontextmanager
async def running_demo() -> AsyncIterator[Running]:
    async with demo() as running, serve(cast(Any, running.app)) as server:
        yield server


async def status_of(page: Page, rpc: str, state: str, text: str) -> None:
    status = page.locator(f"#{rpc}-status")
    await expect(status).to_have_attribute("data-state", state)
    await expect(status).to_have_text(text)


async def test_demo_page_runs_all_five_rpcs(tmp_path: Path) -> None:
    async with running_demo() as srv, browser_page(f"{srv.http}/") as page:
        await page.click("#echo-send")
        await status_of(page, "echo", "ok", "OK (close 1000)")
        assert json.loads(await page.locator("#echo-output").inner_text()) == {"message": "hello, wsproxy"}

        # A stream that cannot end for a minute shows its first tick: lines appear as they arrive.
        await page.fill("#ticker-count", "2")
        await page.fill("#ticker-interval", "60000")
        await page.click("#ticker-start")
        await expect(page.locator("#ticker-output li")).to_have_count(1)
        await status_of(page, "ticker", "running", "streaming…")
        # Its error JSON is the error's details, not a tick: the status frame said 400 before the body
        # (grpc-gateway's {"error": ...} envelope, for a stream that fails before its first message).
        await page.fill("#ticker-count", "0")
        await page.click("#ticker-start")
        await status_of(
            page, "ticker", "error", "HTTP 400 INVALID_ARGUMENT count must be 1..1000 (close 4400)"
        )
        await expect(page.locator("#ticker-output li")).to_have_count(0)
        await page.fill("#ticker-count", "5")
        await page.fill("#ticker-interval", "20")
        await page.click("#ticker-start")
        await status_of(page, "ticker", "ok", "OK: 5 ticks (close 1000)")
        ticks = await page.locator("#ticker-output li").all_inner_texts()
        assert [tick.split()[:2] for tick in ticks] == [["tick", str(n)] for n in range(5)]

        await page.fill("#sum-values", "1 2 3 4 5")
        await page.click("#sum-send")
        await status_of(page, "sum", "ok", "OK (close 1000)")
        await expect(page.locator("#sum-output")).to_have_text("total 15 of 5 values")

        # Each reply arrives while the request is still open, before End.
        await page.fill("#chat-text", "hi there")
        await page.click("#chat-send")
        await expect(page.locator("#chat-output li").last).to_have_text("server #0: hi there")
        await page.fill("#chat-text", "second")
        await page.click("#chat-send")
        await expect(page.locator("#chat-output li").last).to_have_text("server #1: second")
        await status_of(page, "chat", "running", "open: send more, or End")
        await page.click("#chat-end")
        await status_of(page, "chat", "ok", "ended: OK (close 1000)")
        assert await page.locator("#chat-output li").all_inner_texts() == [
            "you: hi there",
            "server #0: hi there",
            "you: second",
            "server #1: second",
        ]

        await page.fill("#token", "other-token-42")
        await page.click("#whoami-send")
        await status_of(page, "whoami", "ok", "OK (close 1000)")
        assert json.loads(await page.locator("#whoami-output").inner_text()) == {
            "authorization": "Bearer other-token-42"
        }
        await page.fill("#token", "demo-token")
        await page.click("#whoami-send")
        await expect(page.locator("#whoami-output")).to_contain_text('"Bearer demo-token"')

        await page.fill("#echo-message", "")
        await page.click("#echo-send")
        await status_of(
            page, "echo", "error", "HTTP 400 INVALID_ARGUMENT message must not be empty (close 4400)"
        )
        await expect(page.locator("#echo-output")).to_have_text("")

        update = os.environ.get("WSPROXY_UPDATE_SCREENSHOT") == "1"
        target = SCREENSHOT if update else tmp_path / "demo.png"
        await page.screenshot(path=str(target), full_page=True)
        assert target.read_bytes().startswith(b"\x89PNG")

        # The page links the API's OpenAPI document, and the link opens it.
        await page.click("#openapi-link")
        await expect(page).to_have_url(f"{srv.http}/openapi.json")
        document = json.loads(await page.locator("body").inner_text())
        assert (document["openapi"], "/v1/echo" in document["paths"]) == ("3.1.0", True)


# Runs inside the page: every call kind of the browser module and how errors surface.
MODULE_CALL_KINDS_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const failure = async (promise) => {
    try {
      return { value: await promise };
    } catch (e) {
      return { name: e.name, code: e.code, status: e.status ?? null, grpc: e.grpcCodeName ?? null,
               detail: e.detail ?? null, message: e.message, isCallError: e instanceof m.CallError };
    }
  };
  const collect = async (iterable) => { const all = []; for await (const x of iterable) all.push(x); return all; };
  const out = {};
  out.unary = await m.unary("/v1/echo", { message: "hi" }, { method: "POST" });
  out.ticks = (await collect(m.serverStream("/v1/ticker?count=3&interval_ms=0"))).map((t) => t.seq ?? 0);
  out.rawTicks = (await collect(m.serverStream("/v1/ticker?count=1", undefined, { raw: true })))
    .map((line) => Object.keys(JSON.parse(line)));
  async function* values() { for (const value of [2, 3, 4]) yield { value }; }
  out.sum = await m.clientStream("/v1/sum", values(), { method: "POST" });
  const chat = m.bidi("/v1/chat", { method: "POST" });
  chat.send({ text: "a" });
  out.chatFirst = (await chat.next()).value;
  chat.send({ text: "b" });
  out.chatSecond = (await chat.next()).value;
  chat.closeSend();
  out.chatRest = await collect(chat);
  out.chatStatus = await chat.status;
  out.sendAfterCloseSend = await failure((async () => chat.send({ text: "late" }))());
  const who = m.openCall("/v1/whoami", { token: "tok.en_1" });
  who.closeSend();
  out.whoami = await who.result();
  out.subprotocol = who.subprotocol;
  out.echoError = await failure(m.unary("/v1/echo", { message: "" }, { method: "POST" }));
  const failed = m.openCall("/v1/echo", { method: "POST" });
  failed.send({ message: "" });
  failed.closeSend();
  const failedStatus = await failed.status;
  out.failedStatus = { ok: failedStatus.ok, code: failedStatus.code, reason: failedStatus.reason,
                       httpStatus: failedStatus.httpStatus, detail: failedStatus.error.detail };
  out.notFound = await failure(m.unary("/v1/nowhere"));
  out.tickerError = await failure(collect(m.serverStream("/v1/ticker?count=0")));
  out.emptySend = await failure((async () => m.openCall("/v1/echo").send(""))());
  out.unreachable = await failure(m.unary(`ws://127.0.0.1:${PORT}/`));
  return out;
}
"""


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_browser_module_call_kinds_and_errors() -> None:
    async with running_demo() as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(MODULE_CALL_KINDS_JS.replace("PORT", str(unused_port())))
    assert out["unary"] == {"message": "hi"}
    assert out["ticks"] == [0, 1, 2]
    assert out["rawTicks"] == [["result"]]
    assert out["sum"] == {"total": "9", "count": 3}  # proto3 JSON writes int64 as a string
    assert (out["chatFirst"], out["chatSecond"], out["chatRest"]) == (
        {"text": "a", "seq": 0},
        {"text": "b", "seq": 1},
        [],
    )
    assert out["chatStatus"] == {"ok": True, "code": 1000, "reason": "", "httpStatus": None, "error": None}
    assert (
        out["sendAfterCloseSend"]["message"] == "send() after closeSend(): the request body has already ended"
    )
    assert (out["whoami"], out["subprotocol"]) == ({"authorization": "Bearer tok.en_1"}, "wsproxy.status.v1")
    assert out["echoError"] == {
        "name": "HTTPStatusError",
        "code": 4400,
        "status": 400,
        "grpc": "INVALID_ARGUMENT",
        "detail": "message must not be empty",
        "message": "HTTP 400 INVALID_ARGUMENT message must not be empty",
        "isCallError": True,
    }
    assert out["failedStatus"] == {
        "ok": False,
        "code": 4400,
        "reason": "Bad Request",
        "httpStatus": 400,
        "detail": "message must not be empty",
    }
    assert (out["notFound"]["name"], out["notFound"]["code"], out["notFound"]["status"]) == (
        "HTTPStatusError",
        4404,
        404,
    )
    assert (out["tickerError"]["status"], out["tickerError"]["detail"]) == (400, "count must be 1..1000")
    assert out["emptySend"]["message"] == "an empty message is the half-close: call closeSend() instead"
    assert (out["unreachable"]["name"], out["unreachable"]["code"]) == ("ConnectError", 1006)


def with_module_page(app: ASGIApp) -> ASGIApp:
    """`app`, plus a blank page at / and the browser module at /wsproxy.js to import from it."""
    pages = {"/": (b"text/html", b"<!doctype html><title>wsproxy.js</title>"), "/wsproxy.js": None}

    async def serve_module(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in pages:
            await app(scope, receive, send)
            return
        media_type, body = pages[scope["path"]] or (b"text/javascript", MODULE.read_bytes())
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", media_type)]})
        await send({"type": "http.response.body", "body": body})

    return serve_module


# Transport outcomes the demo does not produce, against the NDJSON app of tests/integration/test_client.py.
MODULE_OUTCOMES_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const failure = async (promise) => {
    try {
      return { value: await promise };
    } catch (e) {
      return { name: e.name, code: e.code, status: e.status ?? null, grpc: e.grpcCodeName ?? null,
               detail: e.detail ?? null };
    }
  };
  const collect = async (iterable) => { const all = []; for await (const x of iterable) all.push(x); return all; };
  const out = {};
  out.raised = await failure(m.unary("/v1/raise"));
  out.tooBig = await failure(m.unary("/v1/big"));
  const upstream = [];
  out.badGateway = await failure((async () => { for await (const x of m.serverStream("/v1/upstream")) upstream.push(x); })());
  out.beforeBadGateway = upstream;
  const ticks = [];
  out.streamError = await failure((async () => {
    for await (const x of m.serverStream("/v1/ticker?count=2&fail=1")) ticks.push(x);
  })());
  out.beforeStreamError = ticks;
  const late = m.openCall("/v1/hold", { method: "POST" });
  late.send("END");
  late.send({ text: "late" });
  out.policy = await failure(late.result());
  out.plainText = await failure(m.unary("/v1/nowhere"));
  return out;
}
"""


async def test_browser_module_transport_outcomes() -> None:
    proxy = WebSocketProxyMiddleware(ndjson_app, max_line_size=1024, half_close_message="END")
    async with serve(cast(Any, with_module_page(proxy))) as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(MODULE_OUTCOMES_JS)
    assert (out["raised"]["name"], out["raised"]["code"]) == ("ProxyInternalError", 1011)
    assert (out["tooBig"]["name"], out["tooBig"]["code"]) == ("MessageTooBigError", 1009)
    assert (out["badGateway"]["name"], out["badGateway"]["code"], out["beforeBadGateway"]) == (
        "BadGatewayError",
        1014,
        [1],
    )
    assert out["streamError"] == {
        "name": "StreamError",
        "code": None,
        "status": 503,
        "grpc": "UNAVAILABLE",
        "detail": "ticker broke",
    }
    assert out["beforeStreamError"] == [{"seq": 0}, {"seq": 1}]
    assert (out["policy"]["name"], out["policy"]["code"]) == ("PolicyViolationError", 1008)
    assert out["plainText"] == {
        "name": "HTTPStatusError",
        "code": 4404,
        "status": 404,
        "grpc": None,
        "detail": "Not Found",
    }


# Many calls on one socket (wsproxy.mux.v1), from inside the page.
MODULE_MUX_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const collect = async (iterable) => { const all = []; for await (const x of iterable) all.push(x); return all; };
  const failure = async (promise) => {
    try { return { value: await promise }; } catch (e) { return { name: e.name, code: e.code, status: e.status }; }
  };
  const conn = m.openMux("/", { token: "mux.token" });
  await conn.opened;
  const calls = [];
  for (let i = 0; i < 5; i++) calls.push(conn.unary("/v1/echo", { message: `u${i}` }, { method: "POST" }));
  for (let i = 0; i < 5; i++) {
    const ticks = collect(conn.serverStream(`/v1/ticker?count=${i + 2}&interval_ms=20`));
    calls.push(ticks.then((all) => all.map((tick) => tick.seq ?? 0)));
  }
  for (let i = 0; i < 4; i++) {
    calls.push(conn.clientStream("/v1/sum", [1, 2, 3, i].map((value) => ({ value })), { method: "POST" }));
  }
  for (let i = 0; i < 4; i++) {
    calls.push((async () => {
      const chat = conn.bidi("/v1/chat", { method: "POST" });
      chat.send({ text: `c${i}a` });
      const first = (await chat.next()).value;   // the reply arrives before the body ends
      chat.send({ text: `c${i}b` });
      const second = (await chat.next()).value;
      chat.closeSend();
      const rest = await collect(chat);
      return [first.text, second.text, rest.length, (await chat.status).code];
    })());
  }
  calls.push(conn.unary("/v1/whoami"));
  calls.push(failure(conn.unary("/v1/echo", { message: "" }, { method: "POST" })));
  const results = await Promise.all(calls);
  const openAfter = conn.openCalls;
  // A cancelled call leaves the socket serving.
  const held = conn.openCall(`/v1/ticker?count=5&interval_ms=60000`);
  held.closeSend();
  await held.next();
  held.close();
  const afterCancel = await conn.unary("/v1/echo", { message: "still" }, { method: "POST" });
  conn.close();
  const afterClose = await failure(conn.unary("/v1/echo", { message: "late" }));
  return { count: calls.length, results, openAfter, afterCancel, afterClose };
}
"""


async def test_browser_module_runs_20_mixed_calls_at_once_over_one_socket() -> None:
    async with running_demo() as srv, browser_page(f"{srv.http}/") as page:
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        out = await page.evaluate(MODULE_MUX_JS)
    assert out["count"] == 20
    results = out["results"]
    assert results[:5] == [{"message": f"u{i}"} for i in range(5)]
    assert results[5:10] == [list(range(i + 2)) for i in range(5)]
    assert results[10:14] == [{"total": str(6 + i), "count": 4} for i in range(4)]
    assert results[14:18] == [[f"c{i}a", f"c{i}b", 0, 1000] for i in range(4)]
    assert results[18] == {"authorization": "Bearer mux.token"}
    assert results[19] == {"name": "HTTPStatusError", "code": 4400, "status": 400}
    assert out["openAfter"] == 0
    assert out["afterCancel"] == {"message": "still"}
    assert out["afterClose"]["name"] == "ConnectionLostError"
    assert len(sockets) == 1  # every call above, on one WebSocket


async def test_demo_page_runs_its_rpcs_over_one_socket() -> None:
    async with running_demo() as srv, browser_page(f"{srv.http}/") as page:
        sockets: list[str] = []
        page.on("websocket", lambda ws: sockets.append(ws.url))
        await page.check("#mux")
        await page.click("#echo-send")
        await status_of(page, "echo", "ok", "OK (close 1000)")
        await page.fill("#ticker-count", "3")
        await page.fill("#ticker-interval", "20")
        await page.click("#ticker-start")
        await status_of(page, "ticker", "ok", "OK: 3 ticks (close 1000)")
        await page.click("#sum-send")
        await expect(page.locator("#sum-output")).to_have_text("total 15 of 5 values")
        await page.click("#chat-send")
        await expect(page.locator("#chat-output li").last).to_have_text("server #0: hi there")
        await page.click("#chat-end")
        await status_of(page, "chat", "ok", "ended: OK (close 1000)")
        await page.click("#whoami-send")
        await expect(page.locator("#whoami-output")).to_contain_text('"Bearer demo-token"')
        await page.fill("#echo-message", "")
        await page.click("#echo-send")
        await status_of(
            page, "echo", "error", "HTTP 400 INVALID_ARGUMENT message must not be empty (close 4400)"
        )
    assert len(sockets) == 1


async def test_browser_mux_flow_control_holds_only_the_unread_call() -> None:
    observed = Observed()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await observed_app(observed, scope, receive, send)

    proxy = WebSocketProxyMiddleware(app)
    async with serve(cast(Any, with_module_page(proxy))) as srv, browser_page(f"{srv.http}/") as page:
        await page.evaluate(
            """async () => {
              const m = await import("/wsproxy.js");
              window.conn = m.openMux("/");
              window.flood = window.conn.openCall("/v1/flood?size=987");  // lines of 1000 bytes, unread
              await window.conn.opened;
            }"""
        )
        for _ in range(200):
            if observed.flood_lines:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        held_at = observed.flood_lines
        # 65536 bytes of credit at 1001 a line: 66 lines, the app maybe one more in hand.
        assert 66 <= held_at <= 67
        other = await page.evaluate(
            'async () => await window.conn.unary("/v1/echo", { message: "other" }, { method: "POST" })'
        )
        assert other == {"message": "other", "method": "POST"}
        assert observed.flood_lines == held_at
        await page.evaluate(
            """() => {
              window.readCount = 0;
              (async () => {
                for await (const line of window.flood) { if (++window.readCount === 500) break; }
                window.flood.close();
              })();
            }"""
        )
        for _ in range(100):
            read = await page.evaluate("() => window.readCount")
            if read == 500:
                break
            await asyncio.sleep(0.1)
        assert read == 500
    assert observed.flood_lines >= 500


# Deadlines and aborts in the browser module (docs/clients.md): timeout= reaches the service as its
# deadline, single socket and mux; an AbortSignal abandons the call with the signal's reason.
MODULE_DEADLINES_JS = """
async () => {
  const m = await import("/wsproxy.js");
  const outcome = async (iterable) => {
    const got = [];
    try {
      for await (const x of iterable) got.push(x.seq ?? 0);
      return { got };
    } catch (e) {
      return { got, name: e.name, status: e.status ?? null, grpc: e.grpcCodeName ?? null };
    }
  };
  const slow = "/v1/ticker?count=3&interval_ms=60000";  // a first tick, then a minute per tick
  const conn = m.openMux("/");
  const started = performance.now();
  const out = {
    single: await outcome(m.openCall(slow, { timeout: 0.3 })),
    mux: await outcome(conn.openCall(slow, { timeout: 0.3 })),
    aborted: await outcome(m.openCall(slow, { signal: AbortSignal.timeout(300) })),
    muxAborted: await outcome(conn.openCall(slow, { signal: AbortSignal.timeout(300) })),
    muxAfter: await conn.unary("/v1/echo", { message: "still" }, { method: "POST" }),
    url: m.callUrl("/v1/x", "POST", 1.5),
  };
  out.seconds = (performance.now() - started) / 1000;
  conn.close();
  return out;
}
"""


async def test_browser_module_timeout_and_abort_signal() -> None:
    async with running_demo() as srv, browser_page(f"{srv.http}/") as page:
        out = await page.evaluate(MODULE_DEADLINES_JS)
    deadline = {"got": [0], "name": "StreamError", "status": 504, "grpc": "DEADLINE_EXCEEDED"}
    assert (out["single"], out["mux"]) == (deadline, deadline)
    assert out["aborted"] == {"got": [0], "name": "TimeoutError", "status": None, "grpc": None}
    assert out["muxAborted"] == out["aborted"]
    assert out["muxAfter"] == {"message": "still"}
    assert out["url"].endswith("/v1/x?method=POST&grpc-timeout=1500m")
    assert out["seconds"] < 10  # four calls of 0.3 s each, nowhere near the ticker's minute

"""The wire contract, end to end: real uvicorn on loopback, a real `websockets` client, every ws implementation."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.exceptions import InvalidStatus
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from tests.support.apps import Recorder, make_app
from tests.support.servers import Running, drain, eventually, serve
from wsproxy import WebSocketProxyMiddleware
from wsproxy._types import Message, Receive, Scope, Send

READ_AHEAD = 64 * 1024  # docs/protocol.md: "at most 64 KiB (plus one message) is read ahead"


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def server(recorder: Recorder, ws_impl: str) -> AsyncIterator[Running]:
    async with serve(WebSocketProxyMiddleware(make_app(recorder)), ws=ws_impl) as running:
        yield running


async def request_of(server: Running, path: str, **kwargs: Any) -> dict[str, Any]:
    async with connect(server.ws + path, **kwargs) as ws:
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert isinstance(frames[0], str)
    result: dict[str, Any] = json.loads(frames[0])
    return result


# 1. Non-WebSocket scopes reach the inner app untouched.


async def test_http_and_lifespan_pass_through(ws_impl: str) -> None:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(scope["type"])
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"x-app", b"yes")]})
        await send({"type": "http.response.body", "body": b"plain"})

    proxy = WebSocketProxyMiddleware(app)
    async with serve(proxy, ws=ws_impl, lifespan="on") as running, httpx.AsyncClient() as client:
        response = await client.post(running.http + "/anything", content=b"x")
    assert (response.status_code, response.text, response.headers["x-app"]) == (200, "plain", "yes")
    assert seen == ["lifespan", "http"]


# 2 and 3. The synthesized request: target, method, headers, token.


async def test_request_mirrors_the_handshake(server: Running) -> None:
    seen = await request_of(server, "/headers?method=POST&q=1", origin="http://app.example")
    assert seen["method"] == "POST"
    assert (seen["path"], seen["query"], seen["scheme"]) == ("/headers", "q=1", "http")
    assert seen["spec_version"] == "2.4"
    assert set(seen["headers"]) == {"host", "origin"}
    assert seen["headers"]["origin"] == "http://app.example"


async def test_bearer_subprotocol_is_accepted_and_becomes_authorization(server: Running) -> None:
    async with connect(server.ws + "/headers", subprotocols=["Bearer", "s3cr3t.t0ken"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "Bearer"
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert json.loads(frames[0])["headers"]["authorization"] == "Bearer s3cr3t.t0ken"


async def test_token_cookie_becomes_authorization(server: Running) -> None:
    seen = await request_of(server, "/headers", additional_headers={"Cookie": "theme=dark; token=abc123"})
    assert seen["headers"]["authorization"] == "Bearer abc123"
    assert "cookie" not in seen["headers"]


async def test_request_mutator_sees_both_scopes(ws_impl: str, recorder: Recorder) -> None:
    def mutate(ws_scope: Scope, http_scope: Scope) -> Scope:
        http_scope["headers"] = [*http_scope["headers"], (b"x-tenant", ws_scope["path"].encode())]
        return http_scope

    async with serve(
        WebSocketProxyMiddleware(make_app(recorder), request_mutator=mutate), ws=ws_impl
    ) as running:
        seen = await request_of(running, "/headers")
    assert seen["headers"]["x-tenant"] == "/headers"


# 4 and 5. Request body: each message one line, half-close, backpressure.


async def test_each_message_is_one_body_line_and_empty_message_half_closes(
    server: Running, recorder: Recorder
) -> None:
    async with connect(server.ws + "/sum?method=POST") as ws:
        await ws.send('{"value": 1}')
        await ws.send(b'{"value": 2}')
        await ws.send('{"value":\r\n 3}')
        await ws.send("")
        frames, code, _ = await drain(ws)
    assert code == 1000
    assert json.loads(frames[0]) == {"total": 6, "count": 3}
    requests = [event for event in recorder.events if event["type"] == "http.request"]
    # Messages that arrive together may come as one event (docs/protocol.md): the lines are the promise.
    assert b"".join(event["body"] for event in requests) == b'{"value": 1}\n{"value": 2}\n{"value":   3}\n'
    assert [event["more_body"] for event in requests][-2:] == [True, False]
    assert requests[-1]["body"] == b""


def late_reader(events: list[Message], go: asyncio.Event) -> Any:
    """Starts reading only once `go` is set, then records every body event and echoes each chunk."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await go.wait()
        while True:
            message = await receive()
            events.append(message)
            if message.get("body"):
                await send({"type": "http.response.body", "body": message["body"], "more_body": True})
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    return app


async def test_short_text_messages_that_wait_together_reach_the_app_as_one_chunk(ws_impl: str) -> None:
    # docs/protocol.md: short text messages (under 4096 characters, no line break) that the server
    # already holds are joined, at most 16 (the yield budget); a binary, a long or a multi-line
    # message, and the half-close, each come alone. (What the server holds at once is what one
    # read of the socket brought: uvicorn stops reading until its queue is drained.)
    events: list[Message] = []
    go = asyncio.Event()
    numbers = [str(i) for i in range(60)]
    long = "L" * 4096
    alone = [b"bin\n", long.encode() + b"\n", b"d e\n"]
    app = WebSocketProxyMiddleware(late_reader(events, go))
    async with serve(app, ws=ws_impl) as running, connect(running.ws + "/x?method=POST") as ws:
        script: list[str | bytes] = [*numbers, b"bin", long, "d\ne", "a", "b", ""]
        for message in script:
            await ws.send(message)
        await asyncio.sleep(0.2)  # the app reads only once they all wait
        go.set()
        frames, code, _ = await drain(ws)
    bodies = [event["body"] for event in events]
    assert b"".join(bodies) == "".join(f"{n}\n" for n in [*numbers, "bin", long, "d e", "a", "b"]).encode()
    assert [body for body in bodies if body in alone] == alone  # each an event of its own
    assert 2 <= max(body.count(b"\n") for body in bodies) <= 16
    assert bodies[-1] == b""
    assert [event["more_body"] for event in events] == [True] * (len(events) - 1) + [False]
    assert (frames, code) == ([*numbers, "bin", long, "d e", "a", "b"], 1000)


async def test_socket_stays_open_after_half_close_until_the_app_answers(server: Running) -> None:
    async with connect(server.ws + "/echo?method=POST") as ws:
        await ws.send("first")
        assert await ws.recv() == "first"
        await ws.send("second")
        await ws.send("")
        frames, code, _ = await drain(ws)
    assert (frames, code) == (["second"], 1000)


async def test_empty_binary_frame_also_half_closes(server: Running) -> None:
    async with connect(server.ws + "/sum?method=POST") as ws:
        await ws.send('{"value": 5}')
        await ws.send(b"")
        frames, code, _ = await drain(ws)
    assert (json.loads(frames[0]), code) == ({"total": 5, "count": 1}, 1000)


async def test_half_close_can_be_disabled(ws_impl: str, recorder: Recorder) -> None:
    app = WebSocketProxyMiddleware(make_app(recorder), half_close_message=None)
    async with serve(app, ws=ws_impl) as running, connect(running.ws + "/echo?method=POST") as ws:
        await ws.send("")
        await ws.send("x")
        assert await ws.recv() == "x"
    body = b"".join(event["body"] for event in recorder.events if event["type"] == "http.request")
    assert body == b"\nx\n"


@pytest.mark.parametrize("hint", ["Unary", "ServerStreaming"])
async def test_method_type_hint_ends_the_body_after_one_message(server: Running, hint: str) -> None:
    async with connect(server.ws + f"/sum?methodType={hint}&method=POST") as ws:
        await ws.send('{"value": 7}')
        frames, code, _ = await drain(ws)
    assert (json.loads(frames[0]), code) == ({"total": 7, "count": 1}, 1000)


async def test_a_message_after_the_half_close_is_a_policy_violation(server: Running) -> None:
    async with connect(server.ws + "/hang?method=POST") as ws:
        assert await ws.recv() == '{"ready": true}'
        await ws.send("")
        await ws.send("too late")
        _, code, reason = await drain(ws)
    assert code == 1008
    assert reason == "message after end of request body"


async def test_messages_are_read_only_when_the_app_asks(ws_impl: str) -> None:
    pulled = 0
    app_read = asyncio.Event()

    async def slow_reader(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        app_read.set()
        await send({"type": "http.response.start", "status": 200})
        await asyncio.sleep(2.5)  # long enough for the once-a-second read-ahead to run
        await send({"type": "http.response.body", "body": b"done\n"})

    proxy = WebSocketProxyMiddleware(slow_reader)

    async def counting(scope: Scope, receive: Receive, send: Send) -> None:
        async def counted() -> Message:
            nonlocal pulled
            message = await receive()
            pulled += message["type"] == "websocket.receive"
            return message

        await proxy(scope, counted, send)

    size = 16 * 1024
    async with serve(counting, ws=ws_impl) as running, connect(running.ws + "/?method=POST") as ws:
        for i in range(100):
            await ws.send(str(i).ljust(size))
        await app_read.wait()
        frames, code, _ = await drain(ws)
    assert (frames, code) == (["done"], 1000)
    # The app's one read, then the bounded read-ahead while it was away: nowhere near all 100.
    assert 1 < pulled <= 1 + READ_AHEAD // size + 1


# 6. Response lines.


async def test_response_is_split_into_lines_across_chunks(server: Running) -> None:
    async with connect(server.ws + "/ticker?count=4") as ws:
        frames, code, _ = await drain(ws)
    assert frames == [json.dumps({"seq": i}) for i in range(4)]
    assert code == 1000


async def test_unterminated_last_line_is_flushed_and_empty_lines_skipped(server: Running) -> None:
    async with connect(server.ws + "/unterminated") as ws:
        frames, code, _ = await drain(ws)
    assert (frames, code) == (['{"a": 1}', '{"b": 2}'], 1000)


async def test_invalid_utf8_line_goes_out_as_binary(server: Running) -> None:
    async with connect(server.ws + "/binary") as ws:
        frames, _, _ = await drain(ws)
    assert frames == [b"\xff\xfe not utf-8"]


async def test_bidi_is_interactive(server: Running) -> None:
    async with connect(server.ws + "/echo?method=POST") as ws:
        for i in range(20):
            await ws.send(f'{{"n": {i}}}')
            assert await asyncio.wait_for(ws.recv(), 5) == f'{{"n": {i}}}'
        await ws.send("")
        assert (await drain(ws))[1] == 1000


# 7. End of call.


async def test_error_status_delivers_the_body_then_4000_plus_status(server: Running) -> None:
    async with connect(server.ws + "/missing") as ws:
        frames, code, reason = await drain(ws)
    assert frames == ['{"code": 5, "message": "no such thing"}']
    assert (code, reason) == (4404, "Not Found")


async def test_app_exception_closes_1011_and_the_server_keeps_serving(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    async with connect(server.ws + "/crash") as ws:
        frames, code, reason = await drain(ws)
    assert frames == ['{"partial": true}']
    assert (code, reason) == (1011, "internal error")
    assert "secret" not in str(reason)
    assert any("app raised on /crash" in record.getMessage() for record in caplog.records)
    async with connect(server.ws + "/ticker?count=1") as ws:
        assert (await drain(ws))[1] == 1000


async def test_app_that_sends_no_response_closes_1011(server: Running) -> None:
    async with connect(server.ws + "/none") as ws:
        assert (await drain(ws))[1:] == (1011, "no response")


async def test_client_gone_while_app_reads_gives_http_disconnect(server: Running, recorder: Recorder) -> None:
    async with connect(server.ws + "/echo?method=POST") as ws:
        await ws.send("one")
        assert await ws.recv() == "one"
    await asyncio.wait_for(recorder.finished.wait(), 5)
    assert recorder.disconnect_seen
    assert not recorder.cancelled


async def test_client_gone_while_app_streams_makes_send_raise(server: Running, recorder: Recorder) -> None:
    async with connect(server.ws + "/stream") as ws:
        assert await ws.recv() == '{"tick": true}'
    await asyncio.wait_for(recorder.finished.wait(), 5)
    assert isinstance(recorder.send_raised, OSError)


async def test_client_gone_while_app_hangs_cancels_the_app(server: Running, recorder: Recorder) -> None:
    async with connect(server.ws + "/hang") as ws:
        assert await ws.recv() == '{"ready": true}'
    await asyncio.wait_for(recorder.finished.wait(), 5)
    assert recorder.cancelled


async def test_client_gone_after_half_close_cancels_a_hanging_app(
    server: Running, recorder: Recorder
) -> None:
    async with connect(server.ws + "/hang?method=POST") as ws:
        assert await ws.recv() == '{"ready": true}'
        await ws.send("")  # the close frame follows it on the same ordered stream: no wait needed
    await asyncio.wait_for(recorder.finished.wait(), 5)
    assert recorder.cancelled


async def test_work_after_a_complete_response_is_not_cancelled(server: Running, recorder: Recorder) -> None:
    async with connect(server.ws + "/background") as ws:
        assert await drain(ws) == (['{"done": true}'], 1000, "")
    await asyncio.wait_for(recorder.finished.wait(), 5)
    assert not recorder.cancelled
    assert {"type": "background.done"} in recorder.events


async def test_no_task_is_left_behind(server: Running, recorder: Recorder) -> None:
    before = len(asyncio.all_tasks())
    for path in ["/hang", "/echo", "/stream"]:
        async with connect(server.ws + path + "?method=POST") as ws:
            await ws.send("{}")
            await ws.recv()
    await eventually(lambda: len(asyncio.all_tasks()) <= before, "back to the tasks before")  # tick + grace


# 8. Limits.


async def test_incoming_message_over_the_limit_closes_1009(ws_impl: str, recorder: Recorder) -> None:
    app = WebSocketProxyMiddleware(make_app(recorder), max_message_size=1000)
    async with serve(app, ws=ws_impl) as running, connect(running.ws + "/echo?method=POST") as ws:
        await ws.send("x" * 1000)
        assert await ws.recv() == "x" * 1000
        await ws.send("x" * 1001)
        assert (await drain(ws))[1:] == (1009, "message too big")


async def test_outgoing_line_over_the_limit_closes_1009(ws_impl: str, recorder: Recorder) -> None:
    app = WebSocketProxyMiddleware(make_app(recorder), max_line_size=100)
    async with serve(app, ws=ws_impl) as running:
        async with connect(running.ws + "/big?size=100") as ws:
            frames, code, _ = await drain(ws)
        assert (frames, code) == (["x" * 100], 1000)
        async with connect(running.ws + "/big?size=101") as ws:
            assert await drain(ws) == ([], 1009, "response line too big")


async def test_a_client_that_stops_reading_holds_the_app_back_and_loses_nothing(ws_impl: str) -> None:
    sent = 0
    pending_since: float | None = None  # when the app's current send() began, while one is under way
    line = b"y" * (64 * 1024 - 8)

    async def firehose(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal sent, pending_since
        await send({"type": "http.response.start", "status": 200})
        for i in range(2000):  # 128 MiB if nothing held it back
            pending_since = asyncio.get_running_loop().time()
            await send({"type": "http.response.body", "body": b"%07d" % i + line + b"\n", "more_body": True})
            pending_since = None
            sent += 1
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    def held_back(stall: float = 0.5) -> bool:
        """The app's send() has been waiting for `stall` seconds: flow control holds it."""
        return pending_since is not None and asyncio.get_running_loop().time() - pending_since > stall

    async with serve(WebSocketProxyMiddleware(firehose), ws=ws_impl) as running:
        # A raw client (websockets' sans-I/O protocol on asyncio streams): it can truly stop reading,
        # where a client library keeps draining the socket into its own buffers.
        protocol = ClientProtocol(parse_uri(running.ws + "/"), max_size=None)
        reader, writer = await asyncio.open_connection(running.host, running.port)
        protocol.send_request(protocol.connect())
        writer.write(b"".join(protocol.data_to_send()))
        # The client reads nothing: buffers fill, then the app's send() waits (instead of buffering).
        await eventually(held_back, "held back by the client that stopped reading", timeout=30)
        held = sent
        assert 0 < held < 2000
        assert held * len(line) < 32 * 1024 * 1024
        texts: list[str] = []
        while not protocol.close_rcvd:
            protocol.receive_data(await reader.read(1 << 20))
            for event in protocol.events_received():
                if isinstance(event, Frame) and event.opcode is Opcode.TEXT:
                    texts.append(bytes(event.data[:7]).decode())
        writer.close()
    assert protocol.close_rcvd.code == 1000
    assert [int(text) for text in texts] == list(range(2000))  # every line, in order


# 9. Origin policy.


async def test_disallowed_origin_is_refused_with_403_before_any_app_code(
    ws_impl: str, recorder: Recorder
) -> None:
    app = WebSocketProxyMiddleware(make_app(recorder), allowed_origins=["https://app.example"])
    async with serve(app, ws=ws_impl) as running:
        with pytest.raises(InvalidStatus) as info:
            async with connect(running.ws + "/headers", origin="https://evil.example"):  # type: ignore[arg-type]
                pass
        assert info.value.response.status_code == 403
        assert json.loads(info.value.response.body or b"{}") == {"error": "origin not allowed", "status": 403}
        assert recorder.scopes == []
        seen = await request_of(running, "/headers", origin="https://app.example")
        assert seen["headers"]["origin"] == "https://app.example"


async def test_bad_method_override_is_refused_with_400(server: Running) -> None:
    with pytest.raises(InvalidStatus) as info:
        async with connect(server.ws + "/headers?method=GET%0D%0AX-Injected:%201"):
            pass
    assert info.value.response.status_code == 400


# 10. Logging.


async def test_one_debug_line_per_stream_without_the_token(
    server: Running, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="wsproxy")
    async with connect(server.ws + "/echo?method=POST", subprotocols=["Bearer", "tok-SECRET"]) as ws:  # type: ignore[list-item]
        await ws.send("a")
        await ws.recv()
        await ws.send("")
        await drain(ws)

    def stream_lines() -> list[str]:
        return [record.getMessage() for record in caplog.records if record.name == "wsproxy"]

    await eventually(lambda: bool(stream_lines()), "logged")  # the line comes as the stream ends
    lines = stream_lines()
    assert len(lines) == 1
    assert "/echo" in lines[0]
    assert "1000" in lines[0]
    assert "1 messages in, 1 lines out" in lines[0]
    assert "tok-SECRET" not in caplog.text

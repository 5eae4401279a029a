"""The middleware's options, each said once: name, type, default, help text and `wsproxy` flag.

Theory of operation. `OPTIONS` is the one description of every keyword option of
`WebSocketProxyMiddleware`, as uvicorn keeps one `Config` field beside each click option. What is
derived from it: the fields' defaults of `ProxyOptions` (wsproxy/_options.py), the flags of the
`wsproxy` command's "WebSocket to HTTP mapping" group with `settings_from_args` and `build_app`
(wsproxy/cli/_main.py, _app.py), and the option tables of docs/options.md and docs/cli.md
(wsproxy/_option_docs.py writes them). What is checked against it, because it must stay spelled
out for readers and type checkers: the middleware's keyword signature and the fields' types
(tests/unit/test_option_table.py fails when any of them disagree).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# Named because other modules use them too (the stream's settings, the mux session).
# W3C Trace Context and Baggage pass by default, so an instrumented app continues the client's trace.
DEFAULT_FORWARDED_HEADERS: tuple[str, ...] = (
    "host",
    "origin",
    "referer",
    "traceparent",
    "tracestate",
    "baggage",
)
DEFAULT_MAX_MESSAGE_SIZE = 1 << 20
DEFAULT_MAX_LINE_SIZE = 1 << 20
DEFAULT_MAX_CALLS_PER_SOCKET = 100


@dataclass(frozen=True)
class Flag:
    """The `wsproxy` flag that sets one option; its value is parsed by the option's type.

    An `int` option takes a positive integer, a `float` option a positive number, any other a text.
    """

    name: str
    metavar: str
    help: str = ""  # --help's words where the command's meaning is narrower than the option's
    repeat: bool = False  # given once per item; the option gets the list
    negation: str | None = None  # a flag that sets the option to None
    negation_help: str = ""
    imports: bool = False  # the text is MODULE:ATTR, the Python object to pass


@dataclass(frozen=True)
class Option:
    """One keyword option of `WebSocketProxyMiddleware`."""

    name: str
    type: str  # the annotation, as the signature writes it
    default: Any
    help: str  # one line, plain text: --help and the docs' first words
    flag: Flag | None
    no_flag: str = ""  # with no flag: why, and what the command does instead
    default_words: str = ""  # a default the value does not say by itself ("no limit")
    doc: str = ""  # what docs/options.md adds after `help` (Markdown)
    go: str = "(none)"  # the counterpart in Go's tmc/grpc-websocket-proxy

    def __post_init__(self) -> None:
        if (self.flag is None) == (not self.no_flag):
            raise ValueError(f"option {self.name}: give either a flag or the reason it has none")


_OBSERVER = (
    "with the same live `wsproxy.StreamStats` record, counted in place: `method`, `path`, `client` "
    '(`"host:port"`), `close_code` (sent or received; `None` if the connection was lost), `messages_in`, '
    "`bytes_in`, `messages_out`, `bytes_out` (payload bytes), `started` (`time.monotonic()`), `duration` "
    "(s, set at the end). Read it, never write it. For access logs and metrics; an exception it raises "
    "is logged, never raised into the stream"
)
_CALLABLE = "a Python callable, given to the middleware in code"

OPTIONS: tuple[Option, ...] = (
    Option(
        "method_override_param",
        "str | None",
        "method",
        "query parameter that sets the HTTP method (`?method=POST`)",
        Flag(
            "--method-override-param",
            "NAME",
            negation="--no-method-override",
            negation_help="ignore the method query parameter",
        ),
        doc="removed from the query the app sees; `None` disables",
        go="`WithMethodParamOverride`",
    ),
    Option(
        "default_method",
        "str",
        "GET",
        "HTTP method when the query names none",
        Flag("--default-method", "METHOD"),
        doc='`"POST"` for gateways whose streaming routes are POST-only. A GET or HEAD call has no request '
        "body: a message on it closes 1008 ([protocol.md](protocol.md#get-and-head-calls-have-no-body))",
        go="(always GET, and the client's messages piped into the GET's body)",
    ),
    Option(
        "forwarded_headers",
        "ForwardedHeaders",
        DEFAULT_FORWARDED_HEADERS,
        "handshake headers passed on to the app",
        Flag(
            "--forward-header",
            "NAME",
            repeat=True,
            help="a handshake header passed on to the gateway; repeat for several; replaces the default "
            f"list ({', '.join(DEFAULT_FORWARDED_HEADERS)})",
        ),
        doc="a collection of names (case-insensitive) or a predicate `f(lower_case_name) -> bool`. "
        "`Sec-WebSocket-*` and hop-by-hop headers never pass",
        go="`WithForwardedHeaders`",
    ),
    Option(
        "token_cookie_name",
        "str | None",
        "token",
        "cookie whose value becomes `Authorization: Bearer <value>`",
        Flag(
            "--token-cookie-name",
            "NAME",
            negation="--no-token-cookie",
            negation_help="do not read a token from cookies",
        ),
        doc="`None` disables",
        go="`WithTokenCookieName`",
    ),
    Option(
        "request_mutator",
        "RequestMutator | None",
        None,
        "function `(websocket_scope, http_scope) -> http_scope` that edits each request",
        Flag("--request-mutator", "MODULE:ATTR", imports=True),
        doc="called once per connection after the mapping; raise "
        "`wsproxy.HandshakeRejected(status, message)` to refuse",
        go="`WithRequestMutator`",
    ),
    Option(
        "half_close_message",
        "str | bytes | None",
        "",
        "the message that ends the request body",
        Flag(
            "--half-close-message",
            "TEXT",
            negation="--no-half-close",
            negation_help="no message ends the request body; only closing does",
        ),
        default_words="the empty message",
        doc="str or bytes; `None`: only closing the socket ends it",
        go="(none: client streams could not finish)",
    ),
    Option(
        "max_message_size",
        "int",
        DEFAULT_MAX_MESSAGE_SIZE,
        "largest incoming message in bytes; larger closes with 1009",
        Flag("--max-message-size", "BYTES"),
        default_words="1 MiB",
    ),
    Option(
        "max_line_size",
        "int",
        DEFAULT_MAX_LINE_SIZE,
        "largest response line in bytes; larger closes with 1009",
        Flag("--max-line-size", "BYTES"),
        default_words="1 MiB",
        doc="memory per stream is bounded by it",
        go="`WithMaxRespBodyBufferSize` (64 KiB, and the stream died over it)",
    ),
    Option(
        "allowed_origins",
        "Collection[str] | None",
        None,
        "the only origins WebSockets are accepted from, e.g. https://app.example.com",
        Flag(
            "--allowed-origin",
            "ORIGIN",
            repeat=True,
            help="accept WebSockets only from this Origin, e.g. https://app.example.com; repeat for several",
        ),
        default_words="any origin",
        doc='exact origins (`"*"` allows any); others get 403 before any app code. Requests without '
        "`Origin` (non-browser clients) pass",
        go="(none: any origin)",
    ),
    Option(
        "max_connections",
        "int | None",
        None,
        "open streams this middleware serves at once; more are refused with HTTP 503",
        Flag("--max-connections", "N", help="open WebSockets per worker; more are refused with HTTP 503"),
        default_words="no limit",
        doc="before accept (or closed 1013 on servers without the denial extension)",
    ),
    Option(
        "max_calls_per_socket",
        "int",
        DEFAULT_MAX_CALLS_PER_SOCKET,
        "calls open at once on one multiplexed (`wsproxy.mux.v1`) WebSocket; more end with 1013",
        Flag("--max-calls-per-socket", "N"),
        doc="the socket stays up ([protocol.md](protocol.md#multiplexing-many-calls-on-one-socket-wsproxymuxv1))",
        go="(none: no multiplexing)",
    ),
    Option(
        "idle_timeout",
        "float | None",
        None,
        "close a WebSocket with no traffic either way for this many seconds",
        Flag("--idle-timeout", "SECONDS"),
        default_words="never",
        doc='with 1001 "idle timeout"; counted in whole seconds (the stream\'s once-a-second tick). '
        "Messages waiting unread do not count as traffic",
    ),
    Option(
        "passthrough_paths",
        "PassthroughPaths | None",
        None,
        "paths whose WebSocket upgrades go to the wrapped app untouched, for the app's own WebSocket routes",
        Flag(
            "--passthrough-path",
            "PREFIX",
            repeat=True,
            help="leave WebSocket upgrades under this path prefix (e.g. /ws/) to the --app's own routes; "
            "repeat for several",
        ),
        default_words="none: every upgrade is proxied",
        doc='path prefixes, each matched at a segment boundary (`"/ws"` takes `/ws` and `/ws/chat`, not '
        "`/wsx`), or a predicate `f(path) -> bool`. Checked first: the app gets the scope, `receive` and "
        "`send` as the server gave them. See [frameworks.md](frameworks.md#the-apps-own-websocket-routes)",
        go="(none: every upgrade is proxied)",
    ),
    Option(
        "on_stream_start",
        "StreamObserver | None",
        None,
        "`f(stats)`, called once as each stream starts (after the accept)",
        None,
        no_flag=_CALLABLE,
        doc=_OBSERVER,
    ),
    Option(
        "on_stream_end",
        "StreamObserver | None",
        None,
        "`f(stats)`, called once as each stream ends (also when the server cancels it)",
        None,
        no_flag=_CALLABLE,
        doc="with the same record as `on_stream_start`, its `duration` set",
    ),
    Option(
        "authenticate",
        "Authenticate | None",
        None,
        "async function `(http_scope) -> None` run before accept; raises `HandshakeRejected` to refuse",
        Flag("--authenticate", "MODULE:ATTR", imports=True),
        doc="after the origin check, the mapping and `request_mutator`; `HandshakeRejected(status, message)` "
        'answers 401/403 JSON; edit `scope["state"]`/`scope["headers"]` to attach an identity; anything '
        "else raised is a 500. See "
        "[operations.md](operations.md#authentication-before-the-upgrade)",
    ),
    Option(
        "metrics",
        "bool | CollectorRegistry",
        False,
        "Prometheus metrics: `True` for prometheus_client's default registry, or a `CollectorRegistry`",
        None,
        no_flag="`--metrics-port PORT` turns it on and serves the metrics of every worker",
        doc="needs `wsproxy[metrics]`. See [operations.md](operations.md#metrics)",
    ),
    Option(
        "access_log",
        "bool",
        False,
        "one INFO line per stream at its end on the `wsproxy.access` logger",
        None,
        no_flag="on in the command; `--no-access-log` turns it off",
        doc="See [operations.md](operations.md#access-log)",
    ),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}
# For a field or a parameter that must spell its type out (a dataclass field, a signature).
DEFAULTS: dict[str, Any] = {option.name: option.default for option in OPTIONS}

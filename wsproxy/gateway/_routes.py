"""Routes from `google.api.http` options: HTTP method + path template -> gRPC method.

Path templates follow google/api/http.proto: literal segments, `*` (one segment), `**` (the rest),
variables `{field.path}` or `{field.path=pattern/*}`, and an optional `:verb` suffix. Matching
follows grpc-gateway v2's ServeMux: each segment is compared percent-decoded (`/v1/%65cho` is
`/v1/echo`, `%3A` may spell a verb's colon), `*` matches an empty segment and `**` zero segments.
One difference, as http.proto says: `%2F` never separates segments; a single-segment variable's
value is fully decoded (`%2F` becomes `/`), while a multi-segment one (`{name=**}`, `{name=a/*}`)
keeps `%2F` as it came."""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import unquote

from google.api import annotations_pb2, http_pb2
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor


class Kind(enum.Enum):
    UNARY = "unary"
    SERVER_STREAMING = "server_streaming"
    CLIENT_STREAMING = "client_streaming"
    BIDI_STREAMING = "bidi_streaming"

    @classmethod
    def of(cls, method: MethodDescriptor) -> Kind:
        client, server = method.client_streaming, method.server_streaming
        if client:
            return cls.BIDI_STREAMING if server else cls.CLIENT_STREAMING
        return cls.SERVER_STREAMING if server else cls.UNARY

    @property
    def streams_requests(self) -> bool:
        return self in (Kind.CLIENT_STREAMING, Kind.BIDI_STREAMING)

    @property
    def streams_responses(self) -> bool:
        return self in (Kind.SERVER_STREAMING, Kind.BIDI_STREAMING)


class TemplateError(ValueError):
    """A path template in a google.api.http option cannot be parsed."""


@dataclass(frozen=True)
class RequestPath:
    """A request path split on "/", each segment percent-decoded on its own.

    `decoded` holds each segment fully decoded; `kept` the same, except that `%2F` stays as it
    came, for multi-segment variables. Decoding per segment means `%2F` never separates segments.
    """

    decoded: tuple[str, ...]
    kept: tuple[str, ...]

    @classmethod
    def parse(cls, raw_path: str) -> RequestPath:
        segments = raw_path[1:].split("/") if raw_path.startswith("/") else [raw_path]
        decoded = tuple(unquote(segment) for segment in segments)
        kept = tuple(
            "".join(
                piece if _ENCODED_SLASH.fullmatch(piece) else unquote(piece)
                for piece in _ENCODED_SLASH.split(raw)
            )
            if "%" in raw
            else raw
            for raw in segments
        )
        return cls(decoded, kept)


_ENCODED_SLASH = re.compile(r"(%2[fF])")


@dataclass(frozen=True)
class Variable:
    field: str  # the field path it sets
    first: int  # the template segments it spans: [first, end)
    end: int
    multi_segment: bool  # `{name=a/*}` or `{name=**}`: the value keeps `%2F`


@dataclass(frozen=True)
class PathTemplate:
    """A compiled path template; `match` walks it as grpc-gateway's Pattern.MatchAndEscape does.

    A literal segment matches its decoded text, `*` any one segment (an empty one too), `**` zero
    or more; a verb matches the end of the decoded last segment, so `%3A` may spell its colon.
    """

    template: str
    segments: tuple[str, ...]  # a literal, "*" or "**"
    variables: tuple[Variable, ...]
    verb: str = ""

    @property
    def _tail(self) -> int:
        return len(self.segments) - 1 - self.segments.index("**") if "**" in self.segments else 0

    def match(self, path: str | RequestPath) -> dict[str, str] | None:
        """Field path -> value (percent-decoded), or None when the path does not match."""
        if isinstance(path, str):
            path = RequestPath.parse(path)
        decoded, kept = path.decoded, path.kept
        if self.verb:
            suffix = ":" + self.verb
            last = decoded[-1]
            if not last.endswith(suffix) or len(last) == len(suffix):
                return None
            decoded = (*decoded[:-1], last[: -len(suffix)])
            kept = (*kept[:-1], kept[-1][: -len(suffix)])
        spans: list[tuple[int, int]] = []
        position, count = 0, len(decoded)
        for segment in self.segments:
            if segment == "**":
                end = count - self._tail
                if end < position:
                    return None
                spans.append((position, end))
                position = end
                continue
            if position >= count or (segment != "*" and decoded[position] != segment):
                return None
            spans.append((position, position + 1))
            position += 1
        if position != count:
            return None
        values = {}
        for variable in self.variables:
            start, end = spans[variable.first][0], spans[variable.end - 1][1]
            if variable.multi_segment:
                values[variable.field] = "/".join(kept[start:end])
            else:
                values[variable.field] = decoded[start]
        return values


def _checked_segment(segment: str, template: str) -> str:
    if segment in ("*", "**"):
        return segment
    if not segment or any(char in segment for char in "{}*"):
        raise TemplateError(f"bad segment {segment!r} in path template {template!r}")
    return segment


def compile_template(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError(f"path template {template!r} must start with '/'")
    body, verb = template[1:], ""
    last_slash, last_brace = body.rfind("/"), body.rfind("}")
    colon = body.rfind(":")
    if colon > max(last_slash, last_brace):
        body, verb = body[:colon], body[colon + 1 :]
    segments: list[str] = []
    variables: list[Variable] = []
    for part in _split_outside_braces(body, template):
        if part.startswith("{"):
            if not part.endswith("}"):
                raise TemplateError(f"unclosed variable in path template {template!r}")
            field, _, pattern = part[1:-1].partition("=")
            pieces = [_checked_segment(piece, template) for piece in (pattern or "*").split("/")]
            first = len(segments)
            segments.extend(pieces)
            multi = len(pieces) > 1 or "**" in pieces
            variables.append(Variable(field.strip(), first, len(segments), multi))
        else:
            segments.append(_checked_segment(part, template))
    if segments.count("**") > 1:
        raise TemplateError(f"more than one '**' in path template {template!r}")
    return PathTemplate(template, tuple(segments), tuple(variables), verb)


def _split_outside_braces(body: str, template: str) -> Iterator[str]:
    depth, start = 0, 0
    for index, char in enumerate(body):
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
        elif char == "/" and depth == 0:
            yield body[start:index]
            start = index + 1
        if depth not in (0, 1):
            raise TemplateError(f"unbalanced braces in path template {template!r}")
    yield body[start:]


@dataclass(frozen=True)
class Route:
    http_method: str
    path: PathTemplate
    body: str  # "" (no body), "*" (the whole request) or a field path
    method: MethodDescriptor
    response_body: str = ""  # "" (the whole response) or the field printed instead

    @property
    def kind(self) -> Kind:
        return Kind.of(self.method)

    @property
    def grpc_path(self) -> str:
        return f"/{self.method.containing_service.full_name}/{self.method.name}"


def _rule_routes(rule: http_pb2.HttpRule, method: MethodDescriptor) -> Iterator[Route]:
    pattern = rule.WhichOneof("pattern")
    if pattern is not None:
        if pattern == "custom":
            http_method, template = rule.custom.kind.upper(), rule.custom.path
        else:
            http_method, template = pattern.upper(), getattr(rule, pattern)
        yield Route(http_method, compile_template(template), rule.body, method, rule.response_body)
    for binding in rule.additional_bindings:
        yield from _rule_routes(binding, method)


def service_routes(service: ServiceDescriptor) -> list[Route]:
    """Every route of `service`; methods without a google.api.http option get none."""
    routes: list[Route] = []
    for method in service.methods:
        options = method.GetOptions()
        if options.HasExtension(annotations_pb2.http):
            routes.extend(_rule_routes(options.Extensions[annotations_pb2.http], method))
    return routes


class NoRoute(LookupError):
    """No route answers the request: `method_not_allowed` when a route of another method matches the path."""

    def __init__(self, *, method_not_allowed: bool) -> None:
        super().__init__("Method Not Allowed" if method_not_allowed else "Not Found")
        self.method_not_allowed = method_not_allowed


def find_route(
    routes: Sequence[Route], method: str, raw_path: str, *, form_fallback: bool = False
) -> tuple[int, dict[str, str]]:
    """The index of the route that answers `method raw_path`, and its path values (ServeMux.ServeHTTP).

    The last declared route wins, since grpc-gateway's ServeMux.Handle prepends. `form_fallback`
    (isPathLengthFallback: a POST of an `application/x-www-form-urlencoded` body) lets a GET route
    answer when no POST route matches. Raises NoRoute otherwise.
    """
    path = RequestPath.parse(raw_path)
    method_not_allowed = False
    for index in range(len(routes) - 1, -1, -1):
        route = routes[index]
        if route.http_method != method:
            continue
        params = route.path.match(path)
        if params is not None:
            return index, params
    for index in range(len(routes) - 1, -1, -1):
        route = routes[index]
        if route.http_method == method:
            continue
        params = route.path.match(path)
        if params is not None:
            if form_fallback and route.http_method == "GET":
                return index, params
            method_not_allowed = True
    raise NoRoute(method_not_allowed=method_not_allowed)

"""Routes from `google.api.http` options: HTTP method + path template -> gRPC method.

Path templates follow google/api/http.proto: literal segments, `*` (one segment), `**` (the rest),
variables `{field.path}` or `{field.path=pattern/*}`, and an optional `:verb` suffix. As that file
says, a single-segment variable's value is fully percent-decoded (`%2F` becomes `/`), while a
multi-segment one (`{name=**}`, `{name=a/*}`) keeps `%2F` as it came.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterator
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
class PathTemplate:
    template: str
    regex: re.Pattern[str]
    variables: tuple[str, ...]  # field paths, in group order
    multi_segment: tuple[bool, ...] = ()  # per variable: may span several segments

    def match(self, raw_path: str) -> dict[str, str] | None:
        """Field path -> percent-decoded value, or None when the path does not match."""
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        values = {}
        for index, field in enumerate(self.variables):
            raw = found.group(f"v{index}")
            if index < len(self.multi_segment) and self.multi_segment[index]:
                values[field] = "".join(
                    piece if _ENCODED_SLASH.fullmatch(piece) else unquote(piece)
                    for piece in _ENCODED_SLASH.split(raw)
                )
            else:
                values[field] = unquote(raw)
        return values


_ENCODED_SLASH = re.compile(r"(%2[fF])")


def _segment_pattern(segment: str, template: str) -> str:
    if segment == "*":
        return "[^/]+"
    if segment == "**":
        return ".*"
    if not segment or any(char in segment for char in "{}*"):
        raise TemplateError(f"bad segment {segment!r} in path template {template!r}")
    return re.escape(segment)


def compile_template(template: str) -> PathTemplate:
    if not template.startswith("/"):
        raise TemplateError(f"path template {template!r} must start with '/'")
    body, verb = template[1:], ""
    last_slash, last_brace = body.rfind("/"), body.rfind("}")
    colon = body.rfind(":")
    if colon > max(last_slash, last_brace):
        body, verb = body[:colon], body[colon + 1 :]
    parts: list[str] = []
    variables: list[str] = []
    multi_segment: list[bool] = []
    for segment in _split_outside_braces(body, template):
        if segment.startswith("{"):
            if not segment.endswith("}"):
                raise TemplateError(f"unclosed variable in path template {template!r}")
            field, _, pattern = segment[1:-1].partition("=")
            pieces = (pattern or "*").split("/")
            inner = "/".join(_segment_pattern(piece, template) for piece in pieces)
            parts.append(f"(?P<v{len(variables)}>{inner})")
            variables.append(field.strip())
            multi_segment.append(len(pieces) > 1 or "**" in pieces)
        else:
            parts.append(_segment_pattern(segment, template))
    regex = "/" + "/".join(parts) + (":" + re.escape(verb) if verb else "")
    return PathTemplate(template, re.compile(regex), tuple(variables), tuple(multi_segment))


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

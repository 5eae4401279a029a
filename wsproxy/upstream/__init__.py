"""Fronting a gateway that runs elsewhere: an ASGI app that forwards each request, full duplex.

`UpstreamApp` (`_app`) is the forwarding app; `_request` decides how a request is framed, `_h11` and
`_h2` are the HTTP/1.1 and HTTP/2 clients, `_pool` keeps their connections, and `_errors` holds the
fixed error texts a client sees. See docs/upstream.md.
"""

from wsproxy.upstream._app import HTTP_VERSIONS, HttpVersion, UpstreamApp, forwarded_request_headers

__all__ = ["HTTP_VERSIONS", "HttpVersion", "UpstreamApp", "forwarded_request_headers"]

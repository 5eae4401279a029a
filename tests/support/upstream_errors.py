"""docs/upstream.md's table of upstream failures as literals (error, reason: status), not the code's
constants: the unit table and the real-server tests check against the same rows."""

from __future__ import annotations

DOCUMENTED = {
    ("upstream unreachable", "connection refused"): 502,
    ("upstream unreachable", "host unreachable"): 502,
    ("upstream unreachable", "TLS handshake failed"): 502,
    ("upstream timeout", "connect timed out"): 504,
    ("upstream timeout", "no response in time"): 504,
    ("upstream busy", "all upstream connections are in use"): 503,
    ("bad upstream response", "connection reset"): 502,
    ("bad upstream response", "closed without a response"): 502,
    ("bad upstream response", "malformed response"): 502,
}

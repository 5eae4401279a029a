"""The demo's committed generated code matches a regeneration from its .proto (grpc_tools in this process)."""

from __future__ import annotations

import re
from pathlib import Path

from example_service import _protoc

GENERATED = ["echo_pb2.py", "echo_pb2.pyi", "echo_pb2_grpc.py"]


OUT_DIR = Path(_protoc.PROTO).parent


# Tool version stamps differ between grpcio-tools releases; everything else must match.
_STAMPS = [
    (re.compile(r"# Protobuf Python Version: .*"), "# Protobuf Python Version: *"),
    (re.compile(r"ValidateProtobufRuntimeVersion\([^)]*\)"), "ValidateProtobufRuntimeVersion(*)"),
    (re.compile(r"GRPC_GENERATED_VERSION = '[^']*'"), "GRPC_GENERATED_VERSION = *"),
]


def _normalized(path: Path) -> str:
    text = path.read_text()
    for pattern, replacement in _STAMPS:
        text = pattern.sub(replacement, text)
    return text


def test_committed_generated_code_matches_regeneration(tmp_path: Path) -> None:
    _protoc.generate(tmp_path)
    for name in GENERATED:
        committed = _protoc.PACKAGE_ROOT / OUT_DIR / name
        assert _normalized(tmp_path / OUT_DIR / name) == _normalized(committed), (
            f"{committed} is stale: run `python -m example_service._protoc`"
        )

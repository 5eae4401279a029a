"""The test-only LibraryService (tests/support/protos/library), loaded from its .proto at import."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent / "protos"))
protos_and_services: Any = grpc.protos_and_services
library_pb2, library_pb2_grpc = protos_and_services("library/v1/library.proto")

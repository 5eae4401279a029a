"""Regenerate the committed protobuf/gRPC modules: `python -m example_service._protoc`.

Needs grpcio-tools (a dev dependency); the generated files are committed so that
running the demo does not.
"""

from __future__ import annotations

import sys
from pathlib import Path

from wsproxy import protoc

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PROTO = "example_service/proto/example/v1/echo.proto"


def generate(out_dir: Path) -> None:
    """Write echo_pb2.py, echo_pb2.pyi and echo_pb2_grpc.py under `out_dir` (mirroring PROTO's path).

    wsproxy.protoc adds the google/api and google/protobuf include paths after the repo root.
    """
    args = [f"-I{PACKAGE_ROOT}", f"--python_out={out_dir}", f"--pyi_out={out_dir}"]
    if protoc.run([*args, f"--grpc_python_out={out_dir}", PROTO]) != 0:
        raise RuntimeError(f"protoc failed for {PROTO}")


if __name__ == "__main__":
    generate(PACKAGE_ROOT)
    sys.exit(0)

"""Regenerate the committed protobuf/gRPC modules: `python -m example_service._protoc`.

Needs grpcio-tools (a dev dependency); the generated files are committed so that
running the demo does not.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
PROTO = "example_service/proto/example/v1/echo.proto"


def include_dirs() -> list[str]:
    """The repo root, googleapis-common-protos (google/api) and grpc_tools (google/protobuf)."""
    import google.api
    import grpc_tools  # type: ignore[import-untyped]

    googleapis = Path(next(iter(google.api.__path__))).parent.parent
    well_known = resources.files(grpc_tools) / "_proto"
    return [str(PACKAGE_ROOT), str(googleapis), str(well_known)]


def generate(out_dir: Path) -> None:
    """Write echo_pb2.py, echo_pb2.pyi and echo_pb2_grpc.py under `out_dir` (mirroring PROTO's path)."""
    from grpc_tools import protoc

    args = ["grpc_tools.protoc", *(f"-I{path}" for path in include_dirs())]
    args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", PROTO]
    if protoc.main(args) != 0:
        raise RuntimeError(f"protoc failed for {PROTO}")


if __name__ == "__main__":
    generate(PACKAGE_ROOT)
    sys.exit(0)

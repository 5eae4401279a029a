"""`python -m wsproxy.protoc PROTOC_ARGS...`: grpcio-tools' protoc with the include paths a gateway's
.proto needs.

A .proto with `google.api.http` options imports `google/api/annotations.proto`, which protoc does not
ship: googleapis-common-protos (in the `grpc` extra) installs it beside its generated modules. The
well-known types (`google/protobuf/*.proto`) come with grpcio-tools. Both folders are added after the
caller's own `-I` paths, so a project's copy of either wins:

    python -m wsproxy.protoc -I protos --python_out=. --grpc_python_out=. --pyi_out=. \\
        protos/greet/v1/greet.proto

grpcio-tools is a build-time tool and is not in the `grpc` extra: it pins protobuf's version range,
and generated code needs only the grpcio and protobuf runtimes. Install it where you generate
(`pip install grpcio-tools`). This module imports nothing of wsproxy's gateway, so a missing piece is
a one-line error, not a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

PROG = "python -m wsproxy.protoc"


class MissingTool(Exception):
    """A package the command needs is not installed; the message says which and how to get it."""


def include_dirs() -> list[str]:
    """The folders holding `google/api/annotations.proto` and `google/protobuf/*.proto`.

    Raises MissingTool if googleapis-common-protos or grpcio-tools is not installed.
    """
    try:
        import google.api
    except ImportError:
        raise MissingTool(
            "googleapis-common-protos is not installed (it has google/api/annotations.proto): "
            "pip install 'wsproxy[grpc]'"
        ) from None
    try:
        import grpc_tools  # type: ignore[import-untyped]
    except ImportError:
        raise MissingTool("grpcio-tools is not installed (it has protoc): pip install grpcio-tools") from None
    # google is a namespace package: find the copy of google/api that holds the .proto files.
    googleapis = next(
        (
            Path(path).parent.parent
            for path in google.api.__path__
            if (Path(path) / "annotations.proto").is_file()
        ),
        None,
    )
    if googleapis is None:
        raise MissingTool("googleapis-common-protos has no google/api/annotations.proto: reinstall it")
    return [str(googleapis), str(resources.files(grpc_tools) / "_proto")]


def run(args: Sequence[str]) -> int:
    """Run protoc with `args` and the include paths; its exit status (protoc prints its own errors)."""
    dirs = include_dirs()
    from grpc_tools import protoc

    return int(protoc.main(["grpc_tools.protoc", *args, *(f"-I{path}" for path in dirs)]))


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(
            f"usage: {PROG} -I PROTO_DIR --python_out=DIR --grpc_python_out=DIR [--pyi_out=DIR] FILE.proto...",
            file=sys.stderr,
        )
        return 2
    try:
        return run(args)
    except MissingTool as missing:
        print(f"{PROG}: error: {missing}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

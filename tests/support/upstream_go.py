"""Go upstreams for the tests, built here with Debian's toolchain (scripts/ensure-go installs it).

- tests/support/go/echo: an NDJSON echo on Go's net/http, standard library only.
- tests/support/go/gateway: a grpc-gateway (v1, Debian's golang-github-grpc-ecosystem-grpc-gateway-dev)
  for example_service's proto, generated with protoc, protoc-gen-go and protoc-gen-grpc-gateway,
  built offline in GOPATH mode against /usr/share/gocode.

Builds are cached under .cache/go/, keyed by the sources and the Go version. Each program prints
its port on its first stdout line; `go_process` waits for it (or fails) and kills the program.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support.upstream_apps import ROOT, Process

GO_SOURCES = ROOT / "tests" / "support" / "go"
CACHE = ROOT / ".cache" / "go"
GOCODE = Path("/usr/share/gocode/src")
GATEWAY_SOURCE = GOCODE / "github.com" / "grpc-ecosystem" / "grpc-gateway"
# Debian's protoc-gen-go is golang/protobuf 1.3 (API v1); the well-known types must be its own
# v1 messages, not the v2 timestamppb that timestamp.proto's go_package names (mixing panics).
TIMESTAMP_V1 = "Mgoogle/protobuf/timestamp.proto=github.com/golang/protobuf/ptypes/timestamp"
PROTO = ROOT / "example_service" / "proto" / "example" / "v1" / "echo.proto"


def _go_env(gopath: Path) -> dict[str, str]:
    return {
        **os.environ,
        "GOPATH": f"{gopath}:/usr/share/gocode",
        "GO111MODULE": "off",  # Debian's Go libraries are a GOPATH tree; nothing is downloaded
        "GOFLAGS": "",
        "GOCACHE": str(CACHE / "gocache"),
        "CGO_ENABLED": "0",
    }


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()[:16]


def missing_for_echo() -> str | None:
    """Why the Go echo cannot be built here, or None."""
    if shutil.which("go") is None:
        return "Go is not installed (scripts/ensure-go installs Debian's golang-go)"
    return None


def missing_for_gateway() -> str | None:
    """Why the grpc-gateway cannot be built here, or None."""
    for tool in ("go", "protoc", "protoc-gen-go", "protoc-gen-grpc-gateway"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (scripts/ensure-go installs the Debian packages)"
    if not (GATEWAY_SOURCE / "runtime").is_dir():
        return "golang-github-grpc-ecosystem-grpc-gateway-dev is not installed (scripts/ensure-go)"
    return None


def _go_version() -> bytes:
    return subprocess.run(["go", "version"], capture_output=True, check=True).stdout


def build_echo() -> Path:
    source = GO_SOURCES / "echo" / "main.go"
    out = CACHE / f"echo-{_key(source.read_bytes(), _go_version())}"
    if not out.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        tmp = out.with_suffix(".tmp")
        subprocess.run(
            ["go", "build", "-o", str(tmp), str(source)],
            env=_go_env(CACHE / "gopath"),
            check=True,
            capture_output=True,
            timeout=300,
        )
        tmp.rename(out)
    return out


def build_gateway() -> Path:
    main = GO_SOURCES / "gateway" / "main.go"
    out = (
        CACHE / f"gateway-{_key(main.read_bytes(), PROTO.read_bytes(), TIMESTAMP_V1.encode(), _go_version())}"
    )
    if out.exists():
        return out
    gopath = CACHE / f"{out.name}-gopath"
    package = gopath / "src" / "wsproxygw"
    shutil.rmtree(gopath, ignore_errors=True)
    (package / "examplepb").mkdir(parents=True)
    shutil.copy(main, package / "main.go")
    shutil.copy(PROTO, gopath / "echo.proto")
    generated = package / "examplepb"
    subprocess.run(
        ["protoc", "-I.", f"-I{GATEWAY_SOURCE / 'third_party' / 'googleapis'}", "-I/usr/include",
         f"--go_out=plugins=grpc,{TIMESTAMP_V1}:{generated}", f"--grpc-gateway_out=logtostderr=true:{generated}",
         "echo.proto"],
        cwd=gopath,
        check=True,
        capture_output=True,
        timeout=120,
    )  # fmt: skip
    tmp = out.with_suffix(".tmp")
    subprocess.run(
        ["go", "build", "-o", str(tmp), "wsproxygw"],
        cwd=gopath,
        env=_go_env(gopath),
        check=True,
        capture_output=True,
        timeout=600,
    )
    tmp.rename(out)
    return out


@contextlib.contextmanager
def go_process(binary: Path, *args: str, startup_timeout: float = 30.0) -> Iterator[Process]:
    """Run a Go test program; yields it once it printed its port; SIGKILLs it at the end."""
    proc = subprocess.Popen(
        [str(binary), *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], startup_timeout)
        line = proc.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            raise RuntimeError(f"{binary.name} did not print its port (exit status {proc.poll()})")
        yield Process(proc, int(line))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

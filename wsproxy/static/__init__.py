"""The browser module `wsproxy.js` and its TypeScript declarations `wsproxy.d.ts`, as package data.

    app.mount("/wsproxy", wsproxy.static_files())  # serves /wsproxy/wsproxy.js and /wsproxy/wsproxy.d.ts

`static_files()` is a Starlette `StaticFiles` for this folder (Starlette or FastAPI needed, imported
only when called); `static_dir()` is the folder, to copy the files into a front-end build. The
content types are set here rather than guessed from the platform's MIME table, which maps `.ts` to
MPEG transport streams and, on some Windows set-ups, `.js` to text/plain.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from starlette.staticfiles import StaticFiles

FILES = ("wsproxy.js", "wsproxy.d.ts")  # the folder also holds this module: only these are served
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".ts": "application/typescript; charset=utf-8",
}


def static_dir() -> Path:
    """The folder holding wsproxy.js and wsproxy.d.ts."""
    return Path(__file__).resolve().parent


def static_files() -> StaticFiles:
    """A Starlette `StaticFiles` app serving wsproxy.js and wsproxy.d.ts: mount it at any path.

    Raises ImportError (naming what to install) if Starlette is not installed.
    """
    return _static_files_class()(directory=static_dir())


@functools.cache
def _static_files_class() -> type[StaticFiles]:
    try:
        from starlette.responses import FileResponse
        from starlette.staticfiles import StaticFiles
    except ImportError:
        raise ImportError(
            "wsproxy.static_files() needs Starlette (FastAPI brings it): pip install starlette"
        ) from None

    class BrowserModuleFiles(StaticFiles):
        def lookup_path(self, path: str) -> tuple[str, os.stat_result | None]:
            if path not in FILES:
                return "", None
            return super().lookup_path(path)

        def file_response(self, full_path: Any, *args: Any, **kwargs: Any) -> Any:
            response = super().file_response(full_path, *args, **kwargs)
            media_type = MEDIA_TYPES.get(os.path.splitext(str(full_path))[1])
            if media_type is not None and isinstance(response, FileResponse):
                response.headers["content-type"] = media_type
            return response

    return BrowserModuleFiles

"""The app of one stream, run in the server's task: its failure, our cancellation, and its grace.

Theory of operation. A stream runs its app right in the server's task (no task of its own: memory
per stream). So a cancellation of that task is either the server's (it is shutting the connection
down: it must propagate) or ours (the client left and the app did not finish within
DISCONNECT_GRACE_SECONDS: the stream ends quietly). Python 3.11 counts a task's cancellations, so
`uncancel()` tells the two apart, and leaves the server's task as it was when the app swallowed ours.
"""

from __future__ import annotations

import asyncio

from wsproxy._types import ASGIApp, Receive, Scope, Send

DISCONNECT_GRACE_SECONDS = 1.0  # how long the app may run on after its client is gone


class AppTask:
    """Runs the app in the current task; `end_later()` cancels it if it is still running after the grace."""

    __slots__ = ("cancel_handle", "cancelled_by_us", "running", "task")

    def __init__(self) -> None:
        self.task: asyncio.Task[object] | None = None  # the server's task, which runs the app
        self.running = False
        self.cancelled_by_us = False
        self.cancel_handle: asyncio.TimerHandle | None = None

    async def run(
        self, app: ASGIApp, scope: Scope, receive: Receive, send: Send
    ) -> tuple[bool, BaseException | None]:
        """(ended by our cancellation, what the app raised or None). The server's cancellation propagates."""
        self.task = asyncio.current_task()
        self.running = True
        try:
            await app(scope, receive, send)
        except asyncio.CancelledError:
            if not self._cancelled_only_by_us():
                raise  # the server is cancelling this connection
            return True, None  # cancelled by us after the client left
        except BaseException as exc:  # one app's failure ends only its own stream
            return False, exc
        finally:
            self.stop()
        if self.cancelled_by_us and self.task is not None and hasattr(self.task, "uncancel"):
            # The app swallowed our cancellation and returned: leave the server's task as it was.
            self.task.uncancel()
        return False, None

    def end_later(self) -> None:
        """The client is gone: cancel the app if it is still running after the grace period."""
        if self.running:
            self.cancel_handle = asyncio.get_running_loop().call_later(DISCONNECT_GRACE_SECONDS, self._cancel)

    def stop(self) -> None:
        self.running = False
        if self.cancel_handle is not None:
            self.cancel_handle.cancel()

    def _cancel(self) -> None:
        if self.running and self.task is not None:
            self.cancelled_by_us = True
            self.task.cancel()

    def _cancelled_only_by_us(self) -> bool:
        if not self.cancelled_by_us:
            return False
        task = self.task
        if task is not None and hasattr(task, "uncancel"):  # Python 3.11+ counts cancellations
            return task.uncancel() == 0
        return True

"""Many calls on one WebSocket (`wsproxy.mux.v1`): the frame codec and the session that serves it.

`_frames` is the pure codec and flow-control arithmetic, shared with the Python client; `_session`
reads the socket, routes each frame to its call, and runs every call as an ordinary stream over a
virtual WebSocket, `_call`. See docs/protocol.md, "Multiplexing".
"""

from wsproxy.mux._frames import SUBPROTOCOL
from wsproxy.mux._session import MuxSession, offers_mux

__all__ = ["SUBPROTOCOL", "MuxSession", "offers_mux"]

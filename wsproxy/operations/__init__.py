"""What operators see of the streams: Prometheus metrics, the access log, and stream observers.

Each is told of a stream when it starts or ends (never per message), from the stream's stats record.
See docs/operations.md.
"""

from wsproxy.operations._access_log import QueryValuesHidden, log_stream
from wsproxy.operations._metrics import StreamMetrics, metrics_for
from wsproxy.operations._observers import chain

__all__ = ["QueryValuesHidden", "StreamMetrics", "chain", "log_stream", "metrics_for"]

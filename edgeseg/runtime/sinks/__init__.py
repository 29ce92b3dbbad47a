"""Output sinks by URI: video files, image folders, a window, a browser live view, streams out."""

from edgeseg.runtime.sinks.base import NullSink, Sink
from edgeseg.runtime.sinks.factory import open_sink, open_sinks, open_stream_sinks

__all__ = ["NullSink", "Sink", "open_sink", "open_sinks", "open_stream_sinks"]

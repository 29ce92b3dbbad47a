"""A real RTSP server for the tests: GStreamer's gst-rtsp-server on loopback, run by Debian's Python (python3-gi).

    /usr/bin/python3 rtsp_server.py PORT play VIDEO          /stream: VIDEO decoded and sent as H.264 (RTP)
    /usr/bin/python3 rtsp_server.py PORT undecodable VIDEO   /stream: video as RTP X-GST, which FFmpeg cannot decode
    /usr/bin/python3 rtsp_server.py PORT record OUTPUT       /publish: takes a published H.264 stream (ANNOUNCE/RECORD)
                                                             and writes it to OUTPUT as an H.264 elementary stream

It prints "ready" once it listens and serves until killed.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402 - the versions must be chosen first

ENCODE = "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10"
PIPELINES = {
    "play": "( filesrc location={path} ! decodebin ! " + ENCODE + " ! rtph264pay name=pay0 pt=96 config-interval=1 )",
    "undecodable": "( filesrc location={path} ! decodebin ! videoconvert ! rtpgstpay name=pay0 pt=96 )",
    "record": (
        "( rtph264depay name=depay0 ! h264parse ! video/x-h264,stream-format=byte-stream ! "
        "filesink location={path} buffer-mode=unbuffered sync=false )"
    ),
}


def main() -> None:
    port, mode, path = sys.argv[1], sys.argv[2], sys.argv[3]
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINES[mode].format(path=path))
    if mode == "record":
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        # What waits in the jitter buffer when the publisher says TEARDOWN is dropped: keep that short.
        factory.set_latency(50)
    else:
        factory.set_shared(True)  # one pipeline for every client, like a camera
    server.get_mount_points().add_factory("/publish" if mode == "record" else "/stream", factory)
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

"""A real RTSP server for the tests: GStreamer's gst-rtsp-server on loopback, run by Debian's Python (python3-gi).

    /usr/bin/python3 rtsp_server.py PORT play VIDEO          /stream: VIDEO sent as H.264 (RTP), looping: after its
                                                             last frame the first follows, timestamps running on
    /usr/bin/python3 rtsp_server.py PORT undecodable VIDEO   /stream: video as RTP X-GST, which FFmpeg cannot decode
    /usr/bin/python3 rtsp_server.py PORT record OUTPUT       /publish: takes a published H.264 stream (ANNOUNCE/RECORD)
                                                             and writes it to OUTPUT as an H.264 elementary stream
    /usr/bin/python3 rtsp_server.py PORT relay WxH           /publish takes a published stream and /stream serves it
                                                             to any client (black until something is published), as
                                                             a media server does

It prints "ready" once it listens and serves until killed.
"""

from __future__ import annotations

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402 - the versions must be chosen first


class LoopingFrames:
    """The video's frames for an appsrc, from the first again after the last, with timestamps that keep rising
    within a pipeline (a camera's stream never ends; a restart of the file would send time backwards)."""

    def __init__(self, path: str):
        import cv2  # Debian's python3-opencv

        self.cv2, self.path = cv2, path
        self.capture = cv2.VideoCapture(path)
        self.fps = self.capture.get(cv2.CAP_PROP_FPS) or 25.0
        self.width = int(self.capture.get(cv2.CAP_PROP_FRAME_WIDTH))
        self.height = int(self.capture.get(cv2.CAP_PROP_FRAME_HEIGHT))
        self.sent = 0

    def caps(self) -> str:
        return f"video/x-raw,format=BGR,width={self.width},height={self.height},framerate={round(self.fps)}/1"

    def next_buffer(self) -> Gst.Buffer:
        ok, frame = self.capture.read()
        if not ok:  # the end of the file: from the start again
            self.capture.release()
            self.capture = self.cv2.VideoCapture(self.path)
            ok, frame = self.capture.read()
        buffer = Gst.Buffer.new_wrapped(frame.tobytes())
        duration = int(Gst.SECOND / self.fps)
        buffer.pts, buffer.duration = self.sent * duration, duration
        self.sent += 1
        return buffer


def feed_from(frames: LoopingFrames):
    def configure(factory, media):
        source = media.get_element().get_by_name("frames")
        source.set_property("caps", Gst.Caps.from_string(frames.caps()))
        frames.sent = 0  # a new pipeline's running time starts at 0: so do its timestamps
        source.connect("need-data", lambda src, length: src.emit("push-buffer", frames.next_buffer()))

    return configure


ENCODE = "videoconvert ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10"
PIPELINES = {
    "play": (
        "( appsrc name=frames is-live=true format=time ! " + ENCODE + " ! "
        "rtph264pay name=pay0 pt=96 config-interval=1 )"
    ),
    "undecodable": "( filesrc location={path} ! decodebin ! videoconvert ! rtpgstpay name=pay0 pt=96 )",
    "relay-in": (
        "( rtph264depay name=depay0 ! h264parse ! avdec_h264 ! videoconvert ! videoscale ! "
        "video/x-raw,format=I420,width={width},height={height} ! intervideosink channel=relay sync=false )"
    ),
    "relay-out": (
        "( intervideosrc channel=relay ! video/x-raw,format=I420,width={width},height={height},framerate=15/1 ! "
        + ENCODE
        + " ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    ),
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
    if mode == "relay":
        width, height = path.split("x")
        mounts = server.get_mount_points()
        for pipeline, mount, record in (("relay-in", "/publish", True), ("relay-out", "/stream", False)):
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(PIPELINES[pipeline].format(width=width, height=height))
            if record:
                factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
                factory.set_latency(50)
            else:
                factory.set_shared(True)
            mounts.add_factory(mount, factory)
        serve(server, port)
        return
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(PIPELINES[mode].format(path=path))
    if mode == "record":
        factory.set_transport_mode(GstRtspServer.RTSPTransportMode.RECORD)
        # What waits in the jitter buffer when the publisher says TEARDOWN is dropped: keep that short.
        factory.set_latency(50)
    else:
        factory.set_shared(True)  # one pipeline for every client, like a camera
    if mode == "play":
        factory.connect("media-configure", feed_from(LoopingFrames(path)))
    server.get_mount_points().add_factory("/publish" if mode == "record" else "/stream", factory)
    serve(server, port)


def serve(server: GstRtspServer.RTSPServer, port: str) -> None:
    if server.attach(None) == 0:
        sys.exit(f"cannot listen on 127.0.0.1:{port}")
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()

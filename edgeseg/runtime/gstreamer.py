"""GStreamer capture pipelines for OpenCV's CAP_GSTREAMER, as a Jetson runs them, with software stand-ins elsewhere.

On a Jetson, capture and decoding run on NVIDIA's elements: nvarguscamerasrc (CSI cameras, NV12 in
NVMM memory), nvv4l2decoder (hardware H.264/H.265) and nvvidconv (NVMM -> system memory, BGRx). Off a
Jetson the same builder swaps each for its software counterpart (videotestsrc, avdec_h264, videoconvert)
and drops the NVMM caps feature, so the pipeline text a Jetson gets is the one tested here.

Live pipelines end in `appsink drop=true max-buffers=1 sync=false`: an appsink that queues makes the
picture lag further behind the camera with every frame, so only the newest buffer is kept. A pipeline
with no live element (a file, a non-live test source) ends in a blocking appsink, so no frame is lost.
"""

from __future__ import annotations

import re

import cv2

from edgeseg.jetson import on_jetson

# NVIDIA element -> the software element with the same role (nvv4l2decoder decodes MJPEG with mjpeg=1).
SOFTWARE_STAND_INS = {
    "nvarguscamerasrc": "videotestsrc",
    "nvv4l2decoder mjpeg=1": "jpegdec",
    "nvv4l2decoder": "avdec_h264",
    "nvvidconv": "videoconvert",
}
USB_FORMATS = ("mjpeg", "yuyv")
LIVE_ELEMENTS = ("nvarguscamerasrc", "v4l2src", "rtspsrc", "udpsrc", "souphttpsrc", "libcamerasrc")
LIVE_APPSINK = "appsink drop=true max-buffers=1 sync=false"
BLOCKING_APPSINK = "appsink drop=false max-buffers=4 sync=false"
TO_BGR = "videoconvert ! video/x-raw,format=BGR"


def has_gstreamer() -> bool:
    """True when this OpenCV was built with GStreamer (pip's opencv-python is not; JetPack's and Debian's are)."""
    return any(
        line.strip().startswith("GStreamer:") and "YES" in line for line in cv2.getBuildInformation().splitlines()
    )


def is_live(pipeline: str) -> bool:
    """A camera or network source, or a source told to run live, produces at its own rate."""
    return "is-live=true" in pipeline.replace(" ", "") or any(re.search(rf"\b{e}\b", pipeline) for e in LIVE_ELEMENTS)


def with_appsink(pipeline: str) -> str:
    """A user's pipeline completed for OpenCV: converted to BGR and ended in an appsink, unless it has one."""
    if re.search(r"\bappsink\b", pipeline):
        return pipeline
    return (
        f"{pipeline.strip().rstrip('!').strip()} ! {TO_BGR} ! {LIVE_APPSINK if is_live(pipeline) else BLOCKING_APPSINK}"
    )


def software(pipeline: str) -> str:
    """The pipeline with NVIDIA's elements replaced by their software stand-ins, and no NVMM memory."""
    for nvidia, stand_in in SOFTWARE_STAND_INS.items():
        pipeline = re.sub(rf"\b{re.escape(nvidia)}(?=\s|$)", stand_in, pipeline)
    pipeline = pipeline.replace("(memory:NVMM)", "")
    # videotestsrc has no sensor-id; a stand-in camera runs live, at the caps' rate, like a sensor.
    return re.sub(r"videotestsrc sensor-id=\d+", "videotestsrc is-live=true", pipeline)


def csi_pipeline(sensor: int, width: int = 1280, height: int = 720, fps: int = 30, nvidia: bool | None = None) -> str:
    """nvarguscamerasrc (NV12 in NVMM memory) -> nvvidconv (BGRx) -> videoconvert (BGR) -> the newest frame."""
    pipeline = (
        f"nvarguscamerasrc sensor-id={sensor} ! "
        f"video/x-raw(memory:NVMM),width={width},height={height},framerate={fps}/1,format=NV12 ! "
        f"nvvidconv ! video/x-raw,format=BGRx ! {TO_BGR} ! {LIVE_APPSINK}"
    )
    return pipeline if (on_jetson() if nvidia is None else nvidia) else software(pipeline)


def rtsp_pipeline(url: str, transport: str | None = None, latency_ms: int = 200, nvidia: bool | None = None) -> str:
    """rtspsrc -> H.264 depay/parse -> nvv4l2decoder (hardware) -> nvvidconv -> BGR -> the newest frame."""
    protocols = f" protocols={transport}" if transport else ""
    pipeline = (
        f"rtspsrc location={url} latency={latency_ms}{protocols} ! rtph264depay ! h264parse ! "
        f"nvv4l2decoder ! nvvidconv ! video/x-raw,format=BGRx ! {TO_BGR} ! {LIVE_APPSINK}"
    )
    return pipeline if (on_jetson() if nvidia is None else nvidia) else software(pipeline)


def usb_pipeline(
    device: str,
    width: int = 1280,
    height: int = 720,
    fps: int = 30,
    pixel_format: str = "mjpeg",
    nvidia: bool | None = None,
) -> str:
    """v4l2src -> MJPEG decoded by nvv4l2decoder (hardware JPEG) or raw YUYV -> nvvidconv -> BGR -> the newest frame.

    USB cameras send MJPEG for sizes above what USB 2 carries raw at full rate; YUYV is uncompressed.
    Off a Jetson the same pipeline decodes with jpegdec and converts with videoconvert.
    """
    if pixel_format == "mjpeg":
        caps = f"image/jpeg,width={width},height={height},framerate={fps}/1 ! nvv4l2decoder mjpeg=1"
    else:
        caps = f"video/x-raw,format=YUY2,width={width},height={height},framerate={fps}/1"
    pipeline = f"v4l2src device={device} ! {caps} ! nvvidconv ! video/x-raw,format=BGRx ! {TO_BGR} ! {LIVE_APPSINK}"
    return pipeline if (on_jetson() if nvidia is None else nvidia) else software(pipeline)

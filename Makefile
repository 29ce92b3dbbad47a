# Two commands that work on a fresh machine: `make demo` and `make test`.
# Each creates .venv at the repo root and installs what it needs.
PYTHON ?= python3
# The test target's prerequisites (lint, the Debian packages, the Triton server's venv, the TensorRT bindings)
# mostly wait on the network: they are made side by side.
MAKEFLAGS += --jobs=4
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint system-deps tensorrt-bindings clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch (on PyPI's default index an unpinned torch is a multi-GB CUDA build).
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[opencv,export,calibrate,bench,dev]"
	touch $(STAMP)

# A real Triton Inference Server for the tests: the nvidia-pytriton wheel bundles tritonserver with
# the Python backend. It pins numpy<2, so it gets its own venv inside .venv; when it cannot be
# installed, the Triton tests skip and say why.
TRITON_SERVER := $(VENV)/triton-server
$(TRITON_SERVER)/.installed: pyproject.toml Makefile
	-mkdir -p $(VENV) && $(PYTHON) -m venv $(TRITON_SERVER) && $(TRITON_SERVER)/bin/pip install --quiet nvidia-pytriton onnxruntime && touch $@

# NVIDIA's real TensorRT Python bindings (8.6.1, 10.3, 10.13, 10.16, 11.4) with C stubs for their native
# libraries, in .cache/tensorrt (never committed: NVIDIA's licence). A version that cannot be fetched
# skips its tests and says why (and is tried again next time). Needs gcc (system-deps).
tensorrt-bindings: $(STAMP) system-deps
	$(PY) tests/real_tensorrt.py

demo: $(STAMP)
	$(VENV)/bin/edgeseg demo driving

# Real components for the tests, from Debian: ffmpeg (stream senders and receivers), opencv-doc
# (sample videos), chromium and its driver (the live view in a real browser), and the Jetson
# stand-in: Debian's Python with its GStreamer-enabled OpenCV (python3-opencv, numpy 1.x), GStreamer's
# RTSP server (python3-gi, gir1.2-gst-rtsp-server-1.0) and the software elements that stand in for
# NVIDIA's (x264enc, avdec_h264, videoconvert).
SYSTEM_PACKAGES := gcc ffmpeg opencv-doc chromium chromium-driver python3-venv python3-opencv python3-gi python3-gst-1.0 \
	gir1.2-gst-rtsp-server-1.0 gstreamer1.0-tools gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-rtsp
system-deps:
	@if ! command -v gcc >/dev/null || ! command -v ffmpeg >/dev/null || ! command -v chromedriver >/dev/null || [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ] \
		|| ! /usr/bin/python3 -c "import cv2, gi, ensurepip; gi.require_version('GstRtspServer', '1.0')" 2>/dev/null || ! command -v gst-inspect-1.0 >/dev/null \
		|| ! gst-inspect-1.0 x264enc >/dev/null 2>&1 || ! gst-inspect-1.0 avdec_h264 >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "note: install $(SYSTEM_PACKAGES) (apt) to run the video, stream and browser tests; they skip without them"; fi; \
	fi

# ruff's rules are in pyproject.toml ([tool.ruff]); the tests run only on a tree that passes them.
lint: $(STAMP)
	$(VENV)/bin/ruff check edgeseg tests

# pytest-xdist workers, each taking whole test modules (their module fixtures are made once); conftest.py hands out
# the longest modules first. One more worker than cores (at most 8): many tests wait on a server, a stream or a
# subprocess, and the extra worker runs meanwhile (on 2 cores, measured: 2 workers kept them 76% busy, 3 kept them 94%).
PYTEST_WORKERS ?= $(shell cores=$$(nproc 2>/dev/null || echo 1); echo $$(( cores < 8 ? cores + 1 : 8 )))
test: lint system-deps $(TRITON_SERVER)/.installed tensorrt-bindings
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

clean:
	rm -rf $(VENV) out .cache

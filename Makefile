# Two commands that work on a fresh machine: `make demo` and `make test`.
# Each creates .venv at the repo root and installs what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint system-deps clean

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The CPU build of torch (on PyPI's default index an unpinned torch is a multi-GB CUDA build).
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[export,calibrate,bench,dev]"
	touch $(STAMP)

# A real Triton Inference Server for the tests: the nvidia-pytriton wheel bundles tritonserver with
# the Python backend. It pins numpy<2, so it gets its own venv inside .venv; when it cannot be
# installed, the Triton tests skip and say why.
TRITON_SERVER := $(VENV)/triton-server
$(TRITON_SERVER)/.installed: $(STAMP)
	-$(PYTHON) -m venv $(TRITON_SERVER) && $(TRITON_SERVER)/bin/pip install --quiet nvidia-pytriton onnxruntime && touch $@

demo: $(STAMP)
	$(VENV)/bin/edgeseg demo driving

# Real components for the tests, from Debian: ffmpeg (stream senders and receivers), opencv-doc
# (sample videos), chromium and its driver (the live view in a real browser).
SYSTEM_PACKAGES := ffmpeg opencv-doc chromium chromium-driver
system-deps:
	@if ! command -v ffmpeg >/dev/null || ! command -v chromedriver >/dev/null || [ ! -f /usr/share/doc/opencv-doc/examples/data/vtest.avi ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; \
		else echo "note: install $(SYSTEM_PACKAGES) (apt) to run the video, stream and browser tests; they skip without them"; fi; \
	fi

# ruff's rules are in pyproject.toml ([tool.ruff]); the tests run only on a tree that passes them.
lint: $(STAMP)
	$(VENV)/bin/ruff check edgeseg tests

test: lint $(TRITON_SERVER)/.installed system-deps
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) out

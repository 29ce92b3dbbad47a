"""The machine behind a benchmark: CPU, libraries, GPU; on a Jetson the power mode, clocks and temperatures."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from edgeseg.jetson import TEGRA_RELEASE, on_jetson


def command_output(*argv: str, timeout: float = 5.0) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout).stdout
    except (OSError, subprocess.SubprocessError):
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def module_version(name: str) -> str | None:
    import importlib

    try:
        return str(getattr(importlib.import_module(name), "__version__", "installed"))
    except Exception:  # absent, or present but broken (a CUDA build without a driver)
        return None


def jetson_info() -> dict[str, Any] | None:
    """Board, L4T release, power mode and jetson_clocks state; None off a Jetson."""
    if not on_jetson():
        return None
    info: dict[str, Any] = {"l4t": TEGRA_RELEASE.read_text().splitlines()[0].strip()}
    model = Path("/proc/device-tree/model")
    if model.is_file():
        info["board"] = model.read_bytes().rstrip(b"\0").decode(errors="replace")
    mode = command_output("nvpmodel", "-q")
    if mode:
        info.update(parse_nvpmodel(mode))
    clocks = command_output("jetson_clocks", "--show")
    if clocks is not None:
        info["jetson_clocks"] = parse_jetson_clocks(clocks)
    return info


def parse_nvpmodel(text: str) -> dict[str, Any]:
    """`nvpmodel -q`: 'NV Power Mode: MAXN' then the mode id."""
    match = re.search(r"NV Power Mode:\s*(\S+)", text)
    ids = re.findall(r"^\s*(\d+)\s*$", text, re.MULTILINE)
    return {"power_mode": match.group(1) if match else None, "power_mode_id": int(ids[0]) if ids else None}


def parse_jetson_clocks(text: str) -> bool:
    """jetson_clocks pins every online CPU's minimum frequency to its maximum: on when they are all equal."""
    cores = re.findall(r"cpu\d+: Online=1 Governor=\S+ MinFreq=(\d+) MaxFreq=(\d+)", text)
    return bool(cores) and all(low == high for low, high in cores)


def parse_tegrastats(line: str) -> dict[str, float]:
    """One tegrastats line -> GPU load and clock, temperatures (C), rail powers (mW)."""
    sample: dict[str, float] = {}
    gpu = re.search(r"GR3D_FREQ (\d+)%(?:@\[?(\d+))?", line)
    if gpu:
        sample["gpu_load_pct"] = float(gpu.group(1))
        if gpu.group(2):
            sample["gpu_mhz"] = float(gpu.group(2))
    emc = re.search(r"EMC_FREQ (\d+)%@(\d+)", line)
    if emc:
        sample["emc_mhz"] = float(emc.group(2))
    for name, value in re.findall(r"(\w+)@(-?[\d.]+)C", line):
        sample[f"temp_{name.lower()}_c"] = float(value)
    for name, value in re.findall(r"(VDD_\w+|VIN_\w+|POM_\w+|GPU|CPU|SOC|CV|VDDRQ|SYS5V) (\d+)mW/", line):
        sample[f"power_{name.lower()}_mw"] = float(value)
    for name, value in re.findall(r"\b(POM_5V_\w+|GPU|CPU|SOC|CV|VDDRQ|SYS5V) (\d+)/\d+", line):
        sample.setdefault(f"power_{name.lower()}_mw", float(value))
    return sample


class TelemetrySampler:
    """Samples device telemetry in the background during a run: tegrastats on a Jetson, NVML on a desktop GPU."""

    def __init__(self, interval: float = 0.5):
        self.interval = interval
        self.samples: list[dict[str, float]] = []
        self.source = "none"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> TelemetrySampler:
        if shutil.which("tegrastats") and on_jetson():
            self.source = "tegrastats"
            self._process = subprocess.Popen(
                ["tegrastats", "--interval", str(int(self.interval * 1000))], stdout=subprocess.PIPE, text=True
            )
            self._thread = threading.Thread(target=self._read_tegrastats, daemon=True)
        elif (nvml := self._nvml()) is not None:
            self.source = "nvml"
            self._thread = threading.Thread(target=self._poll_nvml, args=(nvml,), daemon=True)
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._process:
            self._process.terminate()
            self._process.wait(timeout=5)
        if self._thread:
            self._thread.join(timeout=5)

    def _read_tegrastats(self) -> None:
        assert self._process and self._process.stdout
        for line in self._process.stdout:
            if self._stop.is_set():
                break
            self.samples.append(parse_tegrastats(line))

    @staticmethod
    def _nvml() -> Any:
        try:
            import pynvml

            pynvml.nvmlInit()
            return pynvml
        except Exception:  # not installed, or no NVIDIA driver
            return None

    def _poll_nvml(self, nvml: Any) -> None:
        handle = nvml.nvmlDeviceGetHandleByIndex(0)
        while not self._stop.wait(self.interval):
            self.samples.append(
                {
                    "gpu_mhz": float(nvml.nvmlDeviceGetClockInfo(handle, nvml.NVML_CLOCK_SM)),
                    "temp_gpu_c": float(nvml.nvmlDeviceGetTemperature(handle, nvml.NVML_TEMPERATURE_GPU)),
                    "power_gpu_mw": float(nvml.nvmlDeviceGetPowerUsage(handle)),
                }
            )

    def summary(self) -> dict[str, Any]:
        keys = sorted({k for s in self.samples for k in s})
        stats = {
            k: {"min": min(v), "mean": sum(v) / len(v), "max": max(v)}
            for k in keys
            if (v := [s[k] for s in self.samples if k in s])
        }
        return {"source": self.source, "samples": len(self.samples), "stats": stats}


def gpu_info() -> dict[str, Any] | None:
    output = command_output(
        "nvidia-smi",
        "--query-gpu=name,compute_cap,driver_version,clocks.sm,temperature.gpu,power.draw",
        "--format=csv,noheader",
    )
    if not output or not output.strip():
        return None
    fields = [f.strip() for f in output.splitlines()[0].split(",")]
    return dict(zip(["name", "compute_capability", "driver", "sm_clock", "temperature", "power"], fields))


def environment() -> dict[str, Any]:
    import cv2
    import numpy

    ort = module_version("onnxruntime")
    providers = None
    if ort:
        import onnxruntime

        providers = onnxruntime.get_available_providers()
    env: dict[str, Any] = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "opencv": cv2.__version__,
        "onnxruntime": ort,
        "onnxruntime_providers": providers,
        "torch": module_version("torch"),
        "tensorrt": module_version("tensorrt"),
        "gpu": gpu_info(),
        "jetson": jetson_info(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    jetson = env["jetson"]
    if jetson and jetson.get("power_mode") and not str(jetson["power_mode"]).upper().startswith("MAXN"):
        env.setdefault("warnings", []).append(
            f"the board is in power mode {jetson['power_mode']}, not MAXN: latency is higher than it can be (sudo "
            "nvpmodel -m 0)"
        )
    if jetson and jetson.get("jetson_clocks") is False:
        env.setdefault("warnings", []).append(
            "jetson_clocks is off: clocks scale with load and latency varies (sudo jetson_clocks)"
        )
    return env

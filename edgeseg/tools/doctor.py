"""`edgeseg doctor`: what this machine has for edgeseg, and on a GPU a check of every engine against ONNX Runtime."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edgeseg import __version__
from edgeseg.bench.environment import environment, module_version
from edgeseg.errors import TENSORRT_INSTALL_HINT, EdgesegError, install_command
from edgeseg.runtime.gstreamer import has_gstreamer


def tensorrt_facts() -> dict[str, Any]:
    facts: dict[str, Any] = {"tensorrt": module_version("tensorrt"), "pycuda": module_version("pycuda")}
    if facts["tensorrt"] and facts["pycuda"]:
        try:
            import pycuda.driver as cuda
            import tensorrt as trt

            from edgeseg.engines.compat import current_gpu

            gpu = current_gpu()
            version = cuda.get_driver_version()  # e.g. 12060 for CUDA 12.6
            facts["cuda_driver"] = f"{version // 1000}.{version % 1000 // 10}"
            facts["gpu"] = f"{gpu.name} (compute capability {gpu.compute_capability})"
            facts["dla_cores"] = trt.Builder(trt.Logger(trt.Logger.ERROR)).num_DLA_cores
        except EdgesegError as exc:
            facts["gpu"] = str(exc)
    return facts


def cameras() -> list[str]:
    return sorted(str(p) for p in Path("/dev").glob("video*"))


def report() -> list[tuple[str, str]]:
    env = environment()
    trt = tensorrt_facts()
    jetson = env.get("jetson")
    rows = [
        ("python", f"{platform.python_version()} ({platform.machine()})"),
        ("edgeseg", __version__),
        ("cpu", f"{env['cpu']} ({env['cores']} cores)"),
        ("numpy / opencv", f"{env['numpy']} / {env['opencv']}"),
        (
            "onnxruntime",
            f"{env['onnxruntime']} providers: {', '.join(env['onnxruntime_providers'] or [])}"
            if env["onnxruntime"]
            else "not installed",
        ),
        ("torch (export, train)", env["torch"] or f"not installed: {install_command('export')}"),
        ("onnx (calibrate)", module_version("onnx") or f"not installed: {install_command('calibrate')}"),
        ("tensorrt", trt["tensorrt"] or f"not installed: {TENSORRT_INSTALL_HINT}"),
        ("pycuda", trt["pycuda"] or f"not installed: {install_command('tensorrt')}"),
        ("gpu", trt.get("gpu") or (env["gpu"] or {}).get("name") or "none found"),
        ("cuda driver", trt.get("cuda_driver", "-")),
        ("dla cores", str(trt.get("dla_cores", "-"))),
        (
            "jetson",
            f"{jetson.get('board')} {jetson.get('l4t')}, power mode {jetson.get('power_mode')}, jetson_clocks "
            f"{'on' if jetson.get('jetson_clocks') else 'off'}"
            if jetson
            else "no",
        ),
        (
            "gstreamer in opencv",
            "yes" if has_gstreamer() else "no (pip's opencv-python has none; csi:// needs JetPack's OpenCV)",
        ),
        ("cameras", ", ".join(cameras()) or "none"),
    ]
    rows += [("warning", w) for w in env.get("warnings", [])]
    return rows


def gpu_check(bundle_dir: Path, source: str, frames: int = 100) -> str:
    """Build every precision, compare each engine's class maps with ONNX Runtime FP32, and time it."""
    from edgeseg.bench import BenchOptions, run_bench
    from edgeseg.bench.report import terminal
    from edgeseg.bundle import Bundle
    from edgeseg.engines import BuildOptions, build
    from edgeseg.runtime.backends import tensorrt_usable

    if not tensorrt_usable():
        raise EdgesegError("--gpu-check needs TensorRT and pycuda on a GPU machine (a Jetson or a desktop NVIDIA GPU)")
    precisions = tuple(sorted({a.precision for a in Bundle.load(bundle_dir).artifacts if a.kind == "onnx"}))
    build(bundle_dir, BuildOptions(precisions=precisions))
    # One bench over both backends: ONNX Runtime FP32 is the first row, so every engine's agreement is against it.
    report = run_bench(
        bundle_dir, BenchOptions(source=source, frames=frames, warmup=10, backend="auto", baseline=False)
    )
    return terminal(report.to_dict())

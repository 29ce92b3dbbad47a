"""`edgeseg doctor`: what this machine has for edgeseg, and on a GPU a check of every engine against ONNX Runtime."""

from __future__ import annotations

import platform
from pathlib import Path
from typing import Any

from edgeseg import __version__
from edgeseg.bench.environment import environment, module_version
from edgeseg.engines.cuda import CUDA_INSTALL_HINT, NO_CUDA_PATH
from edgeseg.errors import EdgesegError, install_command
from edgeseg.runtime.gstreamer import has_gstreamer


def tensorrt_facts() -> dict[str, Any]:
    """TensorRT, the CUDA binding, the GPU, the path TensorRT's buffers take on it (mapped zero-copy on an
    integrated GPU, copies on a discrete one) and the DLA cores, each found out on its own: one failing never hides
    the others (a TensorRT whose Builder cannot be created still leaves the GPU and driver reported)."""
    from edgeseg.engines.compat import create_builder, import_tensorrt
    from edgeseg.engines.cuda import cuda_binding_installed, open_cuda

    facts: dict[str, Any] = {"cuda_binding": cuda_binding_installed()}
    try:
        trt = import_tensorrt()
        facts["tensorrt"] = trt.__version__
    except EdgesegError as exc:
        trt, facts["tensorrt_problem"] = None, str(exc)
    if facts["cuda_binding"]:
        try:
            cuda = open_cuda()
            facts["cuda_driver"] = cuda.driver_version()
            gpu = cuda.gpu()
            facts["gpu"] = f"{gpu.name} (compute capability {gpu.compute_capability})"
            facts["gpu_found"] = True
        except EdgesegError as exc:
            facts["gpu"] = str(exc)
        if facts.get("gpu_found"):
            try:
                facts["memory_path"] = cuda.device_memory().describe(gpu.name)
            except EdgesegError as exc:
                facts["memory_path"] = str(exc)
    if trt is not None and facts.get("gpu_found"):
        try:
            facts["dla_cores"] = create_builder(trt, trt.Logger(trt.Logger.ERROR)).num_DLA_cores
        except EdgesegError as exc:
            facts["tensorrt_problem"] = str(exc)
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
        ("tensorrt", trt.get("tensorrt") or trt["tensorrt_problem"]),
        ("cuda binding", trt["cuda_binding"] or f"none: {CUDA_INSTALL_HINT}"),
        ("gpu", trt.get("gpu") or (env["gpu"] or {}).get("name") or "none found"),
        ("cuda driver", trt.get("cuda_driver", "-")),
        ("tensorrt buffers", trt.get("memory_path", NO_CUDA_PATH)),
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
    if trt.get("tensorrt") and trt.get("tensorrt_problem"):
        rows.append(("tensorrt problem", trt["tensorrt_problem"]))
    rows += [("warning", w) for w in env.get("warnings", [])]
    return rows


def gpu_check(bundle_dir: Path, source: str, frames: int = 100) -> str:
    """Build every precision, compare each engine's class maps with ONNX Runtime FP32, and time it."""
    from edgeseg.bench import BenchOptions, run_bench
    from edgeseg.bench.report import terminal
    from edgeseg.bundle import Bundle
    from edgeseg.engines import BuildOptions, build
    from edgeseg.runtime.backends import tensorrt_problem, tensorrt_usable

    if not tensorrt_usable():
        raise EdgesegError(f"--gpu-check needs TensorRT and a CUDA binding on an NVIDIA GPU: {tensorrt_problem()}")
    precisions = tuple(sorted({a.precision for a in Bundle.load(bundle_dir).artifacts if a.kind == "onnx"}))
    build(bundle_dir, BuildOptions(precisions=precisions))
    # One bench over both backends: ONNX Runtime FP32 is the first row, so every engine's agreement is against it.
    report = run_bench(
        bundle_dir, BenchOptions(source=source, frames=frames, warmup=10, backend="auto", baseline=False)
    )
    return terminal(report.to_dict())

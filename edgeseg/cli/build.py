"""edgeseg build, check and doctor: TensorRT engines, whether they will build, and what this machine can run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeseg.arguments import count, parse_batch_range
from edgeseg.cli.groups import add_dla, add_frames, add_precision, add_sources
from edgeseg.errors import EdgesegError

TENSORRT_VERSIONS = ("8.2", "8.5", "8.6", "10.3", "10.13", "11")
JETPACK_RELEASES = ("4", "4.6", "5", "5.1", "6", "6.0", "6.1", "6.2", "7")


def listed_precisions(text: str) -> tuple[str, ...]:
    """--precision's comma list; `all` is an empty tuple, for the caller to fill in."""
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text != "all" else ()


def cmd_build(args: argparse.Namespace) -> int:
    from edgeseg.bundle import Bundle
    from edgeseg.engines import build, build_onnx_file

    listed = listed_precisions(args.precision)
    if Path(args.bundle).suffix == ".onnx":  # one file, such as deploy's DeepStream graph: its own precision
        if not Path(args.bundle).is_file():
            raise EdgesegError(f"{args.bundle}: no such ONNX file; pass a bundle directory or an .onnx file")
        print(build_onnx_file(Path(args.bundle), build_options(args, listed)))
        return 0
    precisions = listed
    if args.precision == "all":
        precisions = tuple(sorted({a.precision for a in Bundle.load(args.bundle).artifacts if a.kind == "onnx"}))
        if args.dla is not None:  # the DLA runs FP16 and INT8 only
            precisions = tuple(p for p in precisions if p != "fp32")
    bundle = build(Path(args.bundle), build_options(args, precisions))
    for artifact in bundle.artifacts:
        if artifact.kind == "engine":
            print(
                f"{artifact.precision}: {artifact.path} (TensorRT {artifact.tools.get('tensorrt')}, "
                f"{artifact.extra.get('gpu')})"
            )
    return 0


def build_options(args: argparse.Namespace, precisions: tuple[str, ...]) -> Any:
    from edgeseg.engines import BuildOptions

    return BuildOptions(
        precisions=precisions,
        workspace_mib=args.workspace,
        optimization_level=args.optimization_level,
        batch=args.batch,
        dla_core=args.dla,
        timing_cache=args.timing_cache,
    )


def cmd_check(args: argparse.Namespace) -> int:
    from edgeseg.engines.check import check_bundle, check_file, report_lines, resolve_targets

    targets = resolve_targets(args.tensorrt, args.jetpack)
    path = Path(args.bundle)
    if path.suffix == ".onnx" and path.is_file():
        verdicts = check_file(path, targets, args.precision or "fp32", args.dla)
    else:
        verdicts = check_bundle(path, targets, args.dla)
    print("\n".join(report_lines(verdicts)))
    return 0 if all(v.builds for v in verdicts) else 1


def cmd_doctor(args: argparse.Namespace) -> int:
    from edgeseg.tools.doctor import gpu_check, report

    rows = report()
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    if args.gpu_check:
        print(gpu_check(Path(args.gpu_check), args.input, args.frames))
    return 0


def add_build(verbs: Any) -> None:
    build = verbs.add_parser(
        "build", help="build TensorRT engines from the bundle's ONNX artifacts (needs TensorRT and a GPU)"
    )
    build.add_argument(
        "bundle", help="bundle directory, or one .onnx file (its engine goes beside it, named as nvinfer names engines)"
    )
    add_precision(build, "all", listed=True)
    build.add_argument("--workspace", type=count, default=None, metavar="MiB", help="builder workspace memory limit")
    build.add_argument(
        "--optimization-level", type=int, choices=range(6), default=None,
        help="builder optimisation level 0-5 (TensorRT 8.6+)",
    )  # fmt: skip
    build.add_argument(
        "--batch", type=parse_batch_range, default=None, metavar="MIN,OPT,MAX", help="profile for a dynamic-batch graph"
    )
    add_dla(build, "build for a DLA core, with GPU fallback (Jetson)")
    build.add_argument("--timing-cache", default=None, metavar="FILE", help="timing cache to reuse and update")
    build.set_defaults(handler=cmd_build)


def add_check(verbs: Any) -> None:
    check = verbs.add_parser(
        "check", help="will each ONNX artifact parse and build on a TensorRT version (offline, any machine)"
    )
    check.add_argument("bundle", help="bundle directory, or one .onnx file")
    check.add_argument("--tensorrt", action="append", choices=TENSORRT_VERSIONS, help="TensorRT version (repeat)")
    check.add_argument(
        "--jetpack", action="append", choices=JETPACK_RELEASES,
        help="JetPack release (repeat): 4 = 4.6 (TensorRT 8.2), 5 = 5.1 (8.5), 6.0 (8.6), 6.1/6.2 (10.3), "
        "6 = both 6.0 and 6.1/6.2, 7 (10.13)",
    )  # fmt: skip
    add_dla(check, "also check for the DLA (Jetson AGX Orin, Orin NX, Xavier)", core=False)
    add_precision(check, None, choices=("fp32", "fp16", "int8"), help="a single .onnx file's precision")
    check.set_defaults(handler=cmd_check)


def add_doctor(verbs: Any) -> None:
    doctor = verbs.add_parser("doctor", help="what is installed and usable here; --gpu-check verifies engines on a GPU")
    doctor.add_argument(
        "--gpu-check", metavar="BUNDLE", help="build every precision and compare each engine with ONNX Runtime FP32"
    )
    add_sources(
        doctor,
        "--gpu-check: frames to compare on (default: synthetic driving at 1280x720)",
        default="synthetic://driving?seed=5000&size=1280x720&frames=100000",
    )
    add_frames(doctor, 100, "--gpu-check: frames to compare (default 100)")
    doctor.set_defaults(handler=cmd_doctor)

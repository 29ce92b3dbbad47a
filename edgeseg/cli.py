"""edgeseg's one entry point: edgeseg {export,info,run,demo,eval,train,dataset,calibrate,build,bench,deploy,doctor}.

Argument parsing and dispatch only: each verb's work lives in its package. Every user mistake is an
EdgesegError: printed as one line, exit status 1, no traceback.
"""

from __future__ import annotations

import argparse
import ast
import errno
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeseg import __version__
from edgeseg.arguments import (
    Parser,
    add_max_pixels,
    ap_points,
    at_least,
    count,
    fraction,
    non_negative,
    opset,
    positive_number,
    probability,
    retries,
    share,
)
from edgeseg.errors import EdgesegError, import_failure, load_opencv
from edgeseg.native_output import show_native_output
from edgeseg.redact import redact_text
from edgeseg.tables import printable

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130
# --precision: which artifact a verb uses; bundle.BEST_PRECISION says what `best` picks. Each verb states its default
# in --help.
PRECISION_CHOICES = ("best", "fp32", "fp16", "int8")


def parse_size(text: str) -> tuple[int, int]:
    """HxW (or one number for a square) -> (height, width)."""
    try:
        parts = [int(v) for v in text.lower().split("x")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be HxW, e.g. 256x512, not '{text}'") from None
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 8:
        raise argparse.ArgumentTypeError(f"size must be HxW with both at least 8, not '{text}'")
    return parts[0], parts[1]


def parse_triple(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three comma-separated numbers, not '{text}'")
    return values  # type: ignore[return-value]


def parse_model_args(pairs: list[str]) -> dict[str, Any]:
    """--arg key=value pairs for the model constructor; values are Python literals when they parse as one."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise EdgesegError(f"--arg takes key=value, not '{pair}'")
        try:
            options[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            options[key] = raw
    return options


# -- verbs -------------------------------------------------------------------------------------
def one_line_verdict(bundle_dir: Path) -> str:
    from edgeseg.engines.check import one_line_verdict as verdict

    return verdict(bundle_dir)


def cmd_export(args: argparse.Namespace) -> int:
    from edgeseg.classes import classes_from_option
    from edgeseg.export import ExportOptions, export

    options = ExportOptions(
        size=args.size,
        classes=classes_from_option(args.classes),
        weights=Path(args.weights) if args.weights else None,
        opset=args.opset,
        batch=args.batch or 1,
        dynamic_batch=args.dynamic_batch,
        dynamic_size=args.dynamic_size,
        fuse_preprocess=not args.no_fuse_preprocess,
        fuse_argmax=not args.no_fuse_argmax,
        mean=args.mean,
        std=args.std,
        model_options=parse_model_args(args.arg),
        force=args.force,
        max_detections=args.max_detections,
        threshold=args.threshold,
    )
    bundle = export(args.model, Path(args.output), options)
    parity = bundle.manifest.get("parity", {})
    if "mean_mask_iou" in parity:
        print(f"exported {args.model} -> {bundle.root}  (parity: {parity['detections']} detections, mask IoU "
              f"{parity['mean_mask_iou']:.4f}, boxes within {parity['max_box_diff_px']:.2g} px)")  # fmt: skip
    elif "peaks" in parity:
        print(f"exported {args.model} -> {bundle.root}  (parity: {parity['peaks']} confident peaks, max |diff| "
              f"{parity['max_abs_diff']:.2e})")  # fmt: skip
    elif "class_map_agreement" in parity:
        print(
            f"exported {args.model} -> {bundle.root}  (parity: {parity['class_map_agreement']:.4%} agreement, max "
            f"|logit diff| {parity['max_abs_logit_diff']:.2e})"
        )
    else:
        print(f"imported {args.model} -> {bundle.root}")
    print(one_line_verdict(bundle.root))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from edgeseg.bundle import Bundle
    from edgeseg.tools.info import describe_bundle

    bundle = Bundle.load(args.bundle)
    print(json.dumps(bundle.manifest, indent=2) if args.json else describe_bundle(bundle))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edgeseg.redact import redact_all
    from edgeseg.runtime.backends import TritonOptions
    from edgeseg.runtime.run import RunOptions, print_summary, run
    from edgeseg.runtime.sinks.live import view_access
    from edgeseg.runtime.sources import StreamOptions

    stream = StreamOptions(
        timeout=args.stream_timeout,
        retries=args.reconnect_retries,
        backoff_cap=args.reconnect_max_wait,
        transport=args.rtsp_transport,
        ffmpeg_options={k: str(v) for k, v in parse_model_args(args.input_option).items()},
    )
    # A remote backend gets the same patience as a live stream; "until stopped" becomes 8 retries.
    retries = args.reconnect_retries if args.reconnect_retries >= 0 else 8
    triton = TritonOptions(timeout=args.stream_timeout, retries=retries, backoff_cap=args.reconnect_max_wait)
    summary = run(
        RunOptions(
            bundle=Path(args.bundle),
            inputs=args.input,
            outputs=args.output or ["none"],
            backend=args.backend,
            precision=args.precision,
            frames=args.frames,
            filter_mode=args.filter_mode,
            alpha=args.alpha,
            visualize=args.visualize,
            save_mask=args.save_mask,
            legend=not args.no_legend,
            threads=args.threads,
            stream=stream,
            triton=triton,
            view=view_access(args.view_token, args.view_token_file, args.view_public),
            dla_core=args.dla,
            score_threshold=args.score_threshold,
            infer_size=args.infer_size,
            also=Path(args.also) if args.also else None,
        )
    )
    print_summary(summary, redact_all(args.output or ["none"]))  # a sink's password never reaches the summary
    return EXIT_INTERRUPTED if summary.interrupted else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeseg.tools.demo import run_demo

    run_demo(
        args.scene, frames=args.frames, output=Path(args.output) if args.output else None, workdir=Path(args.workdir)
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from edgeseg.classes import classes_from_option
    from edgeseg.models.train import TrainOptions, train

    options = TrainOptions(
        size=args.size,
        epochs=args.epochs,
        steps_per_epoch=args.steps,
        batch=args.batch,
        lr=args.lr,
        train_seeds=args.train_seeds,
        val_seeds=args.val_seeds,
        model_options=parse_model_args(args.arg),
        threads=args.threads,
    )
    command = "edgeseg " + " ".join(sys.argv[1:]) if sys.argv[1:2] == ["train"] else ""
    from edgeseg.models.zoo import zoo_entry

    if zoo_entry(args.model).kind == "keypoints":
        from edgeseg.models.keypoint_train import train_keypoints

        best = train_keypoints(args.model, args.data, Path(args.output), options, command)
        print(f"saved {args.output}: best validation PCK@0.05 {best['pck05']:.4f}, PCK@0.1 {best['pck10']:.4f} "
              f"(epoch {best['epoch']})")  # fmt: skip
        return 0
    if zoo_entry(args.model).kind == "instances":
        from edgeseg.models.maskrcnn_train import train_instances

        best = train_instances(args.model, args.data, Path(args.output), options, command)
        print(f"saved {args.output}: best validation mask AP50 {best['mask_ap50']:.4f}, box AP50 "
              f"{best['box_ap50']:.4f} (epoch {best['epoch']})")  # fmt: skip
        return 0
    summary = train(args.model, args.data, Path(args.output), options, classes_from_option(args.classes), command)
    print(
        f"saved {args.output}: best validation mIoU {summary.val_miou:.4f} (epoch {summary.best_epoch}) after "
        f"{summary.seconds:.0f} s"
    )
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from edgeseg.bundle import Bundle
    from edgeseg.tools.evaluate import evaluate, format_report, write_json

    bundle = Bundle.load(args.bundle)
    if not bundle.is_semantic:
        from edgeseg.fileio import write_text_atomic

        if bundle.is_keypoints:
            from edgeseg.tools.evaluate_keypoints import evaluate_keypoints as scored
            from edgeseg.tools.evaluate_keypoints import keypoint_table as table
        else:
            from edgeseg.tools.evaluate_instances import evaluate_instances as scored
            from edgeseg.tools.evaluate_instances import instance_table as table
        figures = scored(Path(args.bundle), args.data, args.backend, args.precision, args.frames)
        print(table(figures))
        if args.json:
            write_text_atomic(Path(args.json), json.dumps(figures, indent=2) + "\n")
        return 0
    result = evaluate(Path(args.bundle), args.data, args.backend, args.precision, args.frames)
    print(format_report(result))
    if args.json:
        write_json(result, Path(args.json))
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from edgeseg.calibration import CalibrateOptions, calibrate
    from edgeseg.tools.info import fidelity_table

    options = CalibrateOptions(
        data=args.data,
        count=args.count,
        eval_count=args.eval_count,
        eval_data=args.eval_data,
        method=args.method,
        precisions=tuple(p for p in args.precision.split(",") if p),
        min_agreement=args.min_agreement,
        max_ap_drop=args.max_ap_drop,
        max_pck_drop=args.max_pck_drop,
        cpu_format=args.cpu_format,
        max_memory_mb=args.max_memory,
        search_minutes=args.search_minutes,
        threads=args.threads,
    )
    bundle = calibrate(Path(args.bundle), options)
    print(fidelity_table(bundle))
    print(one_line_verdict(bundle.root))
    return 0


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


def cmd_bench(args: argparse.Namespace) -> int:
    from edgeseg.bench import BenchOptions, run_bench
    from edgeseg.bench.report import print_terminal, write_json, write_markdown, write_plot
    from edgeseg.fileio import check_writable

    if args.streams is not None:
        return cmd_bench_streams(args)

    outputs = [
        (Path(p), writer)
        for p, writer in ((args.json, write_json), (args.md, write_markdown), (args.plot, write_plot))
        if p
    ]
    for path, _ in outputs:
        check_writable(path)  # fail now, not after minutes of measuring
    options = BenchOptions(
        source=args.input,
        frames=args.frames,
        warmup=args.warmup,
        backend=args.backend,
        precisions=args.precision,
        accuracy_frames=args.accuracy_frames,
        baseline=not args.no_baseline,
        threads=args.threads,
        also=Path(args.also) if args.also else None,
    )
    report = run_bench(Path(args.bundle), options).to_dict()
    print_terminal(report)
    for path, writer in outputs:
        writer(report, path)
        print(f"wrote {path}")
    return 0


def cmd_bench_streams(args: argparse.Namespace) -> int:
    from edgeseg.bench.report import write_json
    from edgeseg.bench.streams import run_stream_bench, stream_table
    from edgeseg.fileio import check_writable

    if args.json:
        check_writable(Path(args.json))
    precision = "best" if args.precision == "all" else args.precision
    report = run_stream_bench(Path(args.bundle), args.streams, args.frames, backend=args.backend, precision=precision)
    print(stream_table(report))
    if args.json:
        write_json(report.to_dict(), Path(args.json))
        print(f"wrote {args.json}")
    return 0


def parse_batch_range(text: str) -> tuple[int, int, int]:
    try:
        low, optimum, high = (int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--batch takes min,opt,max, e.g. 1,4,8, not '{text}'") from None
    if not 1 <= low <= optimum <= high:
        raise argparse.ArgumentTypeError(f"--batch {text}: need 1 <= min <= opt <= max")
    return low, optimum, high


def cmd_build(args: argparse.Namespace) -> int:
    from edgeseg.bundle import Bundle
    from edgeseg.engines import build, build_onnx_file

    listed = tuple(p.strip() for p in args.precision.split(",") if p.strip()) if args.precision != "all" else ()
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


def cmd_doctor(args: argparse.Namespace) -> int:
    from edgeseg.tools.doctor import gpu_check, report

    rows = report()
    width = max(len(name) for name, _ in rows)
    print("\n".join(f"{name:<{width}}  {value}" for name, value in rows))
    if args.gpu_check:
        print(gpu_check(Path(args.gpu_check), args.input, args.frames))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from edgeseg.deploy import DeployOptions, deploy

    if args.input and args.streams not in (None, len(args.input)):
        raise EdgesegError(f"--streams {args.streams} with {len(args.input)} -i sources: give one -i per stream")
    options = DeployOptions(
        target=args.target,
        precision=args.precision,
        streams=args.streams or len(args.input or []) or 1,
        model_name=args.name,
        max_batch=args.max_batch,
        queue_delay_us=args.queue_delay_us,
        instances=args.instances,
        instance_kind=args.instance_kind,
        force=args.force,
        inputs=args.input or [],
        jetpack=args.jetpack,
        encoder=args.encoder,
        ort_tensorrt=args.ort_tensorrt,
    )
    for path in deploy(Path(args.bundle), Path(args.output), options):
        print(f"wrote {path}")
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from edgeseg.tools.dataset import write_labelled_folder

    count = write_labelled_folder(args.source, Path(args.output), force=args.force)
    print(f"wrote {count} labelled frames to {args.output}/images and {args.output}/labels")
    return 0


def parse_seeds(text: str) -> tuple[int, int]:
    first, _, last = text.partition("-")
    try:
        low, high = int(first), int(last or first)
    except ValueError:
        raise argparse.ArgumentTypeError(f"seeds are A-B, e.g. 0-199, not '{text}'") from None
    if low > high:
        raise argparse.ArgumentTypeError(f"seed range '{text}' is empty")
    return low, high


# -- parser ------------------------------------------------------------------------------------
def add_precision_option(parser: argparse.ArgumentParser, default: str) -> None:
    from edgeseg.bundle import BEST_PRECISION

    parser.add_argument(
        "--precision",
        choices=PRECISION_CHOICES,
        default=default,
        help=f"artifact precision: {BEST_PRECISION}, fp32, fp16 or int8 (default: {default})",
    )


def add_run_options(parser: argparse.ArgumentParser) -> None:
    from edgeseg.runtime.backends import BACKENDS
    from edgeseg.runtime.overlay import FILTER_MODES, VISUALIZE

    parser.add_argument(
        "--backend",
        default="auto",
        help=f"inference backend: {', '.join(BACKENDS)}, or triton://HOST:PORT/MODEL (default: auto)",
    )
    add_precision_option(parser, "best")
    parser.add_argument(
        "--filter-mode",
        choices=FILTER_MODES,
        default="linear",
        help="mask upsampling: point (nearest) or linear (smooth); see docs",
    )
    parser.add_argument("--alpha", type=fraction, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    parser.add_argument(
        "--visualize", choices=VISUALIZE, default="overlay", help="what to draw: overlay, mask, or both side by side"
    )
    parser.add_argument(
        "--save-mask", action="store_true", help="folder outputs also keep raw class maps as PNG in masks/"
    )
    parser.add_argument("--no-legend", action="store_true", help="do not draw the class legend")
    parser.add_argument("--threads", type=count, default=None, help="inference threads for the CPU backend")
    parser.add_argument(
        "--dla",
        type=non_negative,
        default=None,
        metavar="CORE",
        help="run the TensorRT engine built with build --dla CORE on that DLA core (default: the GPU engine)",
    )
    parser.add_argument(
        "--infer-size",
        type=parse_size,
        default=None,
        metavar="HxW",
        help="run a bundle exported with --dynamic-size at this input size (default: the size it was exported at)",
    )
    parser.add_argument(
        "--score-threshold",
        type=fraction,
        default=None,
        help="instance bundles: draw detections scoring at least this, 0..1 (default 0.5)",
    )
    parser.add_argument(
        "--also",
        metavar="BUNDLE",
        default=None,
        help="keypoint bundles: also run this semantic bundle (its best precision) on the same frame and draw its "
        "overlay under the points",
    )


def build_parser() -> argparse.ArgumentParser:
    from edgeseg.runtime.backends import BACKENDS

    parser = Parser(
        prog="edgeseg", description="PyTorch semantic segmentation to ONNX/TensorRT and live video at the edge."
    )
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    export = verbs.add_parser("export", help="export a model (zoo name, module:function, or .onnx) into a bundle")
    export.add_argument("model", help="zoo name (see --list), package.module:function, or an existing .onnx file")
    export.add_argument("-o", "--output", required=True, help="bundle directory to create")
    export.add_argument(
        "--size",
        type=parse_size,
        default=None,
        help="input HxW (default: the demo models' training size, else 256x256)",
    )
    export.add_argument(
        "--classes",
        help="class count N, a standard set (cityscapes, camvid, voc, ade20k, kvasir), or a names file (one class "
        "per line, optional R G B); a binary (one-channel) model has two: background and foreground",
    )
    export.add_argument(
        "--threshold",
        type=probability,
        default=None,
        help="binary (one-channel) models: foreground where sigmoid(logit) > THRESHOLD (default 0.5, i.e. logit > 0)",
    )
    export.add_argument("--weights", help="state dict to load (torch.load with weights_only=True)")
    export.add_argument(
        "--opset", type=opset, default=17,
        help="ONNX opset, 11 to 20 (default 17: TensorRT 8.5 / JetPack 5 parse it; 13 for TensorRT 8.2 / JetPack 4.6)",
    )
    export.add_argument(
        "--batch", type=count, default=None, help="fixed batch size (default 1; not with --dynamic-batch)"
    )
    export.add_argument("--dynamic-batch", action="store_true", help="export a dynamic batch dimension")
    export.add_argument(
        "--max-detections", type=count, default=50, help="instance models: detections per frame (default 50)"
    )
    export.add_argument("--dynamic-size", action="store_true", help="export dynamic height and width (not PSPNet)")
    export.add_argument(
        "--no-fuse-preprocess", action="store_true", help="take float NCHW input instead of uint8 BGR frames"
    )
    export.add_argument(
        "--no-fuse-argmax", action="store_true", help="output float logits instead of a uint8 class map"
    )
    export.add_argument(
        "--mean", type=parse_triple, default=(0.485, 0.456, 0.406), help="RGB mean of the model's training data"
    )
    export.add_argument(
        "--std", type=parse_triple, default=(0.229, 0.224, 0.225), help="RGB std of the model's training data"
    )
    export.add_argument(
        "--arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model constructor option, e.g. width=32 or upsample=bilinear",
    )
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.set_defaults(handler=cmd_export)

    info = verbs.add_parser("info", help="show a bundle's manifest")
    info.add_argument("bundle")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.set_defaults(handler=cmd_info)

    run = verbs.add_parser("run", help="segment a video, camera, stream or folder")
    run.add_argument("bundle")
    run.add_argument(
        "-i",
        "--input",
        required=True,
        action="append",
        help="source URI: file, folder/, /dev/video0, rtsp://, gst://, synthetic://driving, ...; repeat it for "
        "several cameras in one run (batched inference; {stream} or {index} in -o paths)",
    )
    run.add_argument(
        "-o",
        "--output",
        action="append",
        help="sink URI, repeatable: out.mp4, folder/, display://0, none (default none)",
    )
    run.add_argument("--frames", type=count, default=None, help="stop after N frames")
    run.add_argument(
        "--stream-timeout",
        type=positive_number,
        default=10.0,
        metavar="S",
        help="seconds to open a stream, and without frames before it counts as lost (default 10)",
    )
    run.add_argument(
        "--reconnect-retries",
        type=retries,
        default=-1,
        metavar="N",
        help="reconnection attempts per loss (default -1: until stopped)",
    )
    run.add_argument(
        "--reconnect-max-wait",
        type=positive_number,
        default=8.0,
        metavar="S",
        help="longest wait between attempts; they double from 0.5 s (default 8)",
    )
    run.add_argument("--rtsp-transport", choices=["tcp", "udp"], default=None, help="RTSP transport for FFmpeg")
    run.add_argument(
        "--view-token",
        metavar="TOKEN",
        default=None,
        help="the live view answers only requests with ?token=TOKEN or an X-Edgeseg-Token header; "
        "needed to bind it beyond 127.0.0.1 (or --view-public). Every user of the machine sees a command line "
        "in ps: prefer --view-token-file or $EDGESEG_VIEW_TOKEN",
    )
    run.add_argument(
        "--view-token-file", metavar="FILE",
        help="read the view token from FILE (mode 0600): unlike --view-token, not shown by ps",
    )  # fmt: skip
    run.add_argument(
        "--view-public", action="store_true", help="serve a live view bound beyond 127.0.0.1 to anyone, without a token"
    )
    run.add_argument(
        "--input-option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra FFmpeg demuxer option, e.g. fflags=nobuffer",
    )
    add_run_options(run)
    add_max_pixels(run)
    run.set_defaults(handler=cmd_run)

    train = verbs.add_parser("train", help="train a zoo model on labelled scenes (CPU)")
    train.add_argument("model", help="zoo name")
    train.add_argument(
        "--data", required=True, help="synthetic://driving, synthetic://medical, or a folder with images/ and labels/"
    )
    train.add_argument(
        "-o", "--output", required=True, help="weights file to write (state dict with class names and colours)"
    )
    train.add_argument("--size", type=parse_size, default=(240, 320), help="training HxW (default 240x320)")
    train.add_argument("--classes", help="class count or names file (synthetic scenes name their own)")
    train.add_argument("--epochs", type=count, default=10)
    train.add_argument("--steps", type=count, default=100, help="steps per epoch (default 100)")
    train.add_argument("--batch", type=count, default=8)
    train.add_argument("--lr", type=positive_number, default=4e-3, help="peak learning rate of the one-cycle schedule")
    train.add_argument(
        "--train-seeds", type=parse_seeds, default=(0, 199), help="scene seeds to train on (default 0-199)"
    )
    train.add_argument(
        "--val-seeds", type=parse_seeds, default=(1000, 1003), help="held-out seeds for per-epoch validation"
    )
    train.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="model option, e.g. width=16")
    train.add_argument("--threads", type=count, default=None)
    add_max_pixels(train)
    train.set_defaults(handler=cmd_train)

    evaluate = verbs.add_parser(
        "eval", help="mIoU, per-class IoU and confusion matrix against labelled frames",
        epilog="COCO labels (instances.json, keypoints.json) are checked whole before use: a bad annotation is "
        "refused in one line naming the file, its id and what is wrong; none is skipped, so no score is computed "
        "on a silently thinned ground truth.",
    )  # fmt: skip
    evaluate.add_argument("bundle")
    evaluate.add_argument(
        "--data", required=True, help="synthetic://SCENE?seed=A-B&frames=N&size=WxH or a labelled folder"
    )
    evaluate.add_argument("--frames", type=count, default=None, help="stop after N frames")
    evaluate.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend (default: auto)")
    add_precision_option(evaluate, "fp32")
    evaluate.add_argument("--json", help="also write the figures as JSON (miou, pixel_accuracy, per_class_iou, ...)")
    add_max_pixels(evaluate)
    evaluate.set_defaults(handler=cmd_eval)

    calibrate = verbs.add_parser(
        "calibrate", help="add INT8 (Q/DQ for TensorRT, fast CPU form) and FP16 variants, with their accuracy cost"
    )
    calibrate.add_argument("bundle")
    calibrate.add_argument(
        "--data", required=True, help="calibration frames: video file, image folder, labelled folder or synthetic://..."
    )
    calibrate.add_argument(
        "--count", type=count, default=256, help="calibration frames, spread across the source (default 256)"
    )
    calibrate.add_argument("--eval-count", type=count, default=64, help="held-out frames for fidelity (default 64)")
    calibrate.add_argument(
        "--eval-data", help="held-out frames from another source (default: frames of --data not used to calibrate)"
    )
    calibrate.add_argument(
        "--method", default="entropy", help="activation ranges: entropy (default), percentile or minmax"
    )
    calibrate.add_argument(
        "--precision", default="int8,fp16", help="variants to make: int8, fp16 or both (default: int8,fp16)"
    )
    calibrate.add_argument(
        "--min-agreement",
        type=share,
        default=None,
        help="e.g. 0.995: keep the most sensitive layers in float until INT8 agrees this well with FP32",
    )
    calibrate.add_argument(
        "--max-ap-drop",
        "--min-ap-drop",
        type=ap_points,
        default=None,
        help="instance models, e.g. 1.0: keep the most sensitive layers in float until INT8 loses at most this many "
        "points of mask AP (the AP form of --min-agreement)",
    )
    calibrate.add_argument(
        "--max-pck-drop",
        type=ap_points,
        default=None,
        help="keypoint models, e.g. 1.0: keep the most sensitive layers in float until INT8 loses at most this many "
        "points of PCK@0.05",
    )
    calibrate.add_argument(
        "--search-minutes",
        type=positive_number,
        default=15.0,
        help="minutes the per-node sensitivity search of --min-agreement/--max-ap-drop/--max-pck-drop may take "
        "(default 15)",
    )
    calibrate.add_argument(
        "--cpu-format", default="auto", help="CPU INT8 encoding: auto (time both, keep the faster), qdq or qoperator"
    )
    calibrate.add_argument("--threads", type=count, default=None)
    calibrate.add_argument(
        "--max-memory",
        type=count,
        default=None,
        metavar="MB",
        help="activations held at once while collecting INT8 ranges, in MB (default 512); less memory, more passes",
    )
    add_max_pixels(calibrate)
    calibrate.set_defaults(handler=cmd_calibrate)

    from edgeseg.bench import DEFAULT_SOURCE

    bench = verbs.add_parser(
        "bench", help="latency percentiles per stage, every precision side by side with its accuracy"
    )
    bench.add_argument("bundle")
    bench.add_argument(
        "-i", "--input", default=DEFAULT_SOURCE, help="frames to benchmark on (default: synthetic driving at 1280x720)"
    )
    bench.add_argument("--frames", type=count, default=200, help="measured frames per row (default 200)")
    bench.add_argument("--warmup", type=non_negative, default=20, help="discarded warm-up runs (default 20)")
    bench.add_argument("--backend", default="auto", help="auto, onnxruntime or tensorrt")
    bench.add_argument("--precision", default="all", help="all, or a comma list of fp32, fp16, int8 (default: all)")
    bench.add_argument("--accuracy-frames", type=count, default=32, help="frames for agreement and mIoU (default 32)")
    bench.add_argument("--no-baseline", action="store_true", help="skip the PyTorch-eager baseline row")
    bench.add_argument(
        "--also",
        metavar="BUNDLE",
        default=None,
        help="keypoint bundles: time this semantic bundle on the same frame too, as run --also does",
    )
    bench.add_argument(
        "--streams",
        type=at_least(2),
        default=None,
        metavar="N",
        help="instead: N synthetic 720p streams in one batched run against N separate runs (--frames per stream)",
    )
    bench.add_argument("--threads", type=count, default=None)
    bench.add_argument("--json", help="write the full report as JSON")
    bench.add_argument("--md", help="write a Markdown report")
    bench.add_argument("--plot", help="write a PNG: latency distribution per row, accuracy against latency")
    add_max_pixels(bench)
    bench.set_defaults(handler=cmd_bench)

    build = verbs.add_parser(
        "build", help="build TensorRT engines from the bundle's ONNX artifacts (needs TensorRT and a GPU)"
    )
    build.add_argument(
        "bundle", help="bundle directory, or one .onnx file (its engine goes beside it, named as nvinfer names engines)"
    )
    build.add_argument(
        "--precision",
        default="all",
        help="all (every ONNX precision in the bundle) or a comma list of fp32, fp16, int8 (default: all)",
    )
    build.add_argument("--workspace", type=count, default=None, metavar="MiB", help="builder workspace memory limit")
    build.add_argument(
        "--optimization-level",
        type=int,
        choices=range(6),
        default=None,
        help="builder optimisation level 0-5 (TensorRT 8.6+)",
    )
    build.add_argument(
        "--batch", type=parse_batch_range, default=None, metavar="MIN,OPT,MAX", help="profile for a dynamic-batch graph"
    )
    build.add_argument(
        "--dla",
        type=non_negative,
        default=None,
        metavar="CORE",
        help="build for a DLA core, with GPU fallback (Jetson)",
    )
    build.add_argument("--timing-cache", default=None, metavar="FILE", help="timing cache to reuse and update")
    build.set_defaults(handler=cmd_build)

    check = verbs.add_parser(
        "check", help="will each ONNX artifact parse and build on a TensorRT version (offline, any machine)"
    )
    check.add_argument("bundle", help="bundle directory, or one .onnx file")
    check.add_argument(
        "--tensorrt", action="append", choices=("8.2", "8.5", "8.6", "10.3", "10.13", "11"),
        help="TensorRT version (repeat)",
    )
    check.add_argument(
        "--jetpack", action="append", choices=("4", "4.6", "5", "5.1", "6", "6.0", "6.1", "6.2", "7"),
        help="JetPack release (repeat): 4 = 4.6 (TensorRT 8.2), 5 = 5.1 (8.5), 6.0 (8.6), 6.1/6.2 (10.3), "
        "6 = both 6.0 and 6.1/6.2, 7 (10.13)",
    )
    check.add_argument("--dla", action="store_true", help="also check for the DLA (Jetson AGX Orin, Orin NX, Xavier)")
    check.add_argument("--precision", choices=("fp32", "fp16", "int8"), help="a single .onnx file's precision")
    check.set_defaults(handler=cmd_check)

    doctor = verbs.add_parser("doctor", help="what is installed and usable here; --gpu-check verifies engines on a GPU")
    doctor.add_argument(
        "--gpu-check", metavar="BUNDLE", help="build every precision and compare each engine with ONNX Runtime FP32"
    )
    doctor.add_argument("-i", "--input", default="synthetic://driving?seed=5000&size=1280x720&frames=100000")
    doctor.add_argument("--frames", type=count, default=100)
    doctor.set_defaults(handler=cmd_doctor)

    deploy = verbs.add_parser("deploy", help="emit a DeepStream or Triton deployment from a bundle")
    from edgeseg.deploy.calibration_cache import JETPACK_CHOICES

    deploy.add_argument("bundle")
    deploy.add_argument("--target", required=True, help="deepstream or triton")
    deploy.add_argument(
        "-o",
        "--output",
        required=True,
        help="directory to write (refused when it exists and is not empty, unless --force)",
    )
    add_precision_option(deploy, "best")
    deploy.add_argument(
        "--streams",
        type=count,
        default=None,
        help="DeepStream: sources batched by nvstreammux (default: the -i count, or 1)",
    )
    deploy.add_argument(
        "-i",
        "--input",
        action="append",
        help="DeepStream: a source URI (repeat per camera; default: NVIDIA's sample video)",
    )
    deploy.add_argument(
        "--jetpack", choices=sorted(JETPACK_CHOICES), default="6",
        help="DeepStream: the JetPack it runs on: 4 (4.6), 5 (5.1), 6.0, 6 (6.1/6.2), 7; names its calibration cache "
        "and, on 4.6, DeepStream 6.0's config (default 6)",
    )  # fmt: skip
    deploy.add_argument(
        "--encoder", choices=["software", "hardware"], default="software",
        help="DeepStream file sink: software x264 (works without NVENC, e.g. Orin Nano) or the hardware encoder",
    )  # fmt: skip
    deploy.add_argument(
        "--ort-tensorrt", action="store_true", help="Triton: run an ONNX model through ONNX Runtime's TensorRT provider"
    )
    deploy.add_argument("--name", default=None, help="model name (default: from the bundle)")
    deploy.add_argument("--max-batch", type=count, default=8, help="Triton: max_batch_size for a dynamic-batch graph")
    deploy.add_argument("--queue-delay-us", type=non_negative, default=100, help="Triton: dynamic batching queue delay")
    deploy.add_argument("--instances", type=count, default=1, help="Triton: instances per device")
    deploy.add_argument("--instance-kind", choices=["gpu", "cpu"], default="gpu", help="Triton: where instances run")
    deploy.add_argument("--force", action="store_true")
    deploy.set_defaults(handler=cmd_deploy)

    dataset = verbs.add_parser("dataset", help="write a labelled source as a folder (images/ + labels/)")
    dataset.add_argument("source", help="e.g. synthetic://medical?seed=5&frames=200&size=320x240")
    dataset.add_argument("-o", "--output", required=True)
    dataset.add_argument("--force", action="store_true", help="replace an existing folder")
    add_max_pixels(dataset)
    dataset.set_defaults(handler=cmd_dataset)

    demo = verbs.add_parser("demo", help="export the demo model and run it on a synthetic scene")
    demo.add_argument("scene", nargs="?", default="driving", choices=["driving", "medical"])
    demo.add_argument("--frames", type=count, default=150, help="frames to render (default 150)")
    demo.add_argument("-o", "--output", help="video to write (default out/demo-SCENE.mp4)")
    demo.add_argument("--workdir", default="out", help="where the demo bundle and video go (default out/)")
    demo.set_defaults(handler=cmd_demo)
    for verb_parser in verbs.choices.values():  # so a check after parsing can answer as the verb would
        verb_parser.set_defaults(verb_parser=verb_parser)
        verb_parser.add_argument(
            "--verbose", action="store_true", help="also show what PyTorch's and ONNX Runtime's C++ code prints"
        )
    return parser


# Flags that contradict each other: (verb, first flag's dest, second flag's dest, the one line that says so).
CONTRADICTIONS = [
    ("run", "view_public", "view_token", "--view-public and --view-token contradict each other: choose who may watch"),
    (
        "export",
        "dynamic_batch",
        "batch",
        "--dynamic-batch and --batch contradict each other: a batch is dynamic or fixed",
    ),
    (
        "bench",
        "streams",
        "md",
        "--streams writes its report with --json; --md and --plot are for the per-precision bench",
    ),
    (
        "bench",
        "streams",
        "plot",
        "--streams writes its report with --json; --md and --plot are for the per-precision bench",
    ),
]


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    show_native_output(args.verbose)
    for verb, first, second, message in CONTRADICTIONS:
        if args.verb == verb and getattr(args, first) not in (None, False) and getattr(args, second) is not None:
            args.verb_parser.error(message)
    return args


def os_error_line(exc: OSError, args: argparse.Namespace | None) -> str:
    """One line for a file-system refusal; for a full disk, where and how much room is left there."""
    if exc.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
        target = Path(exc.filename or getattr(args, "output", None) or getattr(args, "bundle", None) or ".")
        folder = next((p for p in (target, *target.parents) if p.exists()), Path("."))
        free = shutil.disk_usage(folder).free
        return (
            f"no room left writing to '{folder}' ({exc.strerror}; {free / 2**20:.1f} MiB free there); nothing "
            "half-written was kept: free some space or write elsewhere"
        )
    where = f"'{exc.filename}': " if exc.filename else ""
    return f"{where}{exc.strerror or exc}; check the path"


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        # Building the parser imports the runtime (cv2): a missing or broken install is reported here too.
        load_opencv()
        args = parse_arguments(argv)
        handler: Callable[[argparse.Namespace], int] = args.handler
        return handler(args)
    except EdgesegError as exc:
        # printable: a path or name from the user or a file cannot break the line or drive the terminal.
        # redact_text: the last guard, should a line that quotes a camera's URI have missed its own redact.
        print(f"edgeseg: error: {printable(redact_text(str(exc)))}", file=sys.stderr)
        return EXIT_ERROR
    except ImportError as exc:
        print(f"edgeseg: error: {import_failure(exc)}", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # the reader went away (`edgeseg info B | head`): nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:  # a path the file system refuses (too long, no permission, a full disk, ...)
        print(f"edgeseg: error: {printable(os_error_line(exc, args))}", file=sys.stderr)
        return EXIT_ERROR
    except ValueError as exc:
        if "null byte" not in str(exc):
            raise
        print("edgeseg: error: a path or value contains a NUL byte; remove it", file=sys.stderr)
        return EXIT_ERROR
    except SystemExit as exc:  # the parser's one-line usage errors (2), --help and --version (0)
        return exc.code if isinstance(exc.code, int) else EXIT_ERROR
    except KeyboardInterrupt:
        print("edgeseg: interrupted; nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())

"""edgeseg calibrate and edgeseg eval: what quantizing costs in accuracy, and the accuracy against labels."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeseg.arguments import ap_points, count, positive_number, share
from edgeseg.cli.export import one_line_verdict
from edgeseg.cli.groups import (
    add_backend,
    add_data,
    add_frames,
    add_max_pixels,
    add_precision,
    add_threads,
)


def cmd_eval(args: argparse.Namespace) -> int:
    from edgeseg.tools.evaluate import evaluate, format_report, write_json

    result = evaluate(Path(args.bundle), args.data, args.backend, args.precision, args.frames)  # its kind's scorer
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


def add_eval(verbs: Any) -> None:
    evaluate = verbs.add_parser(
        "eval", help="mIoU, per-class IoU and confusion matrix against labelled frames (mask AP, PCK for other kinds)",
        epilog="COCO labels (instances.json, keypoints.json) are checked whole before use: a bad annotation is "
        "refused in one line naming the file, its id and what is wrong; none is skipped, so no score is computed "
        "on a silently thinned ground truth.",
    )  # fmt: skip
    evaluate.add_argument("bundle")
    add_data(evaluate, "synthetic://SCENE?seed=A-B&frames=N&size=WxH or a labelled folder")
    add_frames(evaluate, None, "stop after N frames")
    add_backend(evaluate)
    add_precision(evaluate, "fp32")
    evaluate.add_argument("--json", help="also write the figures as JSON (miou, pixel_accuracy, per_class_iou, ...)")
    add_max_pixels(evaluate)
    evaluate.set_defaults(handler=cmd_eval)


def add_calibrate(verbs: Any) -> None:
    calibrate = verbs.add_parser(
        "calibrate", help="add INT8 (Q/DQ for TensorRT, fast CPU form) and FP16 variants, with their accuracy cost"
    )
    calibrate.add_argument("bundle")
    add_data(calibrate, "calibration frames: video file, image folder, labelled folder or synthetic://...")
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
    add_precision(calibrate, "int8,fp16", listed=True, help="variants to make: int8, fp16 or both (default: int8,fp16)")
    add_accuracy_floors(calibrate)
    calibrate.add_argument(
        "--cpu-format", default="auto", help="CPU INT8 encoding: auto (time both, keep the faster), qdq or qoperator"
    )
    add_threads(calibrate)
    calibrate.add_argument(
        "--max-memory", type=count, default=None, metavar="MB",
        help="activations held at once while collecting INT8 ranges, in MB (default 512); less memory, more passes",
    )  # fmt: skip
    add_max_pixels(calibrate)
    calibrate.set_defaults(handler=cmd_calibrate)


def add_accuracy_floors(calibrate: argparse.ArgumentParser) -> None:
    """How much accuracy INT8 may lose, per kind of bundle, before the most sensitive layers stay in float."""
    group = calibrate.add_argument_group("accuracy floors", "keep the most sensitive layers in float until INT8 ...")
    group.add_argument(
        "--min-agreement", type=share, default=None,
        help="e.g. 0.995: keep the most sensitive layers in float until INT8 agrees this well with FP32",
    )  # fmt: skip
    group.add_argument(
        "--max-ap-drop", "--min-ap-drop", type=ap_points, default=None,
        help="instance models, e.g. 1.0: keep the most sensitive layers in float until INT8 loses at most this many "
        "points of mask AP (the AP form of --min-agreement)",
    )  # fmt: skip
    group.add_argument(
        "--max-pck-drop", type=ap_points, default=None,
        help="keypoint models, e.g. 1.0: keep the most sensitive layers in float until INT8 loses at most this many "
        "points of PCK@0.05",
    )  # fmt: skip
    group.add_argument(
        "--search-minutes", type=positive_number, default=15.0,
        help="minutes the per-node sensitivity search of --min-agreement/--max-ap-drop/--max-pck-drop may take "
        "(default 15)",
    )  # fmt: skip

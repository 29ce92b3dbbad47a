"""edgeseg export and edgeseg train: a model (the zoo's, the user's, or an .onnx) into a bundle, or trained weights."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeseg.arguments import count, opset, parse_model_args, parse_seeds, parse_triple, positive_number, probability
from edgeseg.cli.groups import add_classes, add_data, add_max_pixels, add_model_args, add_size, add_threads

EXPORT_CONTRADICTION = (
    "dynamic_batch", "batch", "--dynamic-batch and --batch contradict each other: a batch is dynamic or fixed"
)  # fmt: skip
# What export's parity check measured, per kind of graph: the manifest key that marks it, and its line's tail.
PARITY_LINES = (
    (
        "mean_mask_iou",
        lambda p: (
            f"{p['detections']} detections, mask IoU {p['mean_mask_iou']:.4f}, boxes within "
            f"{p['max_box_diff_px']:.2g} px"
        ),
    ),
    ("peaks", lambda p: f"{p['peaks']} confident peaks, max |diff| {p['max_abs_diff']:.2e}"),
    (
        "class_map_agreement",
        lambda p: f"{p['class_map_agreement']:.4%} agreement, max |logit diff| {p['max_abs_logit_diff']:.2e}",
    ),
)
# The summary line of the best epoch, per zoo kind other than semantic (whose train returns a TrainSummary).
KIND_SUMMARIES = {
    "keypoints": lambda b: f"best validation PCK@0.05 {b['pck05']:.4f}, PCK@0.1 {b['pck10']:.4f} (epoch {b['epoch']})",
    "instances": lambda b: (
        f"best validation mask AP50 {b['mask_ap50']:.4f}, box AP50 {b['box_ap50']:.4f} (epoch {b['epoch']})"
    ),
}


def one_line_verdict(bundle_dir: Path) -> str:
    """Whether the bundle's ONNX builds on the TensorRT versions that matter, in one line (export, calibrate)."""
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
    measured = next((line(parity) for key, line in PARITY_LINES if key in parity), None)
    print(f"exported {args.model} -> {bundle.root}  (parity: {measured})" if measured else
          f"imported {args.model} -> {bundle.root}")  # fmt: skip
    print(one_line_verdict(bundle.root))
    return 0


def kind_trainers() -> dict[str, Callable[..., dict[str, Any]]]:
    """train's trainer per zoo kind other than semantic, keyed as the zoo entry names its kind."""
    from edgeseg.models.keypoint_train import train_keypoints
    from edgeseg.models.maskrcnn_train import train_instances

    return {"keypoints": train_keypoints, "instances": train_instances}


def cmd_train(args: argparse.Namespace) -> int:
    from edgeseg.classes import classes_from_option
    from edgeseg.models.train import TrainOptions, train
    from edgeseg.models.zoo import zoo_entry

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
    kind = zoo_entry(args.model).kind
    if kind in KIND_SUMMARIES:
        best = kind_trainers()[kind](args.model, args.data, Path(args.output), options, command)
        print(f"saved {args.output}: {KIND_SUMMARIES[kind](best)}")
        return 0
    result = train(args.model, args.data, Path(args.output), options, classes_from_option(args.classes), command)
    print(f"saved {args.output}: best validation mIoU {result.val_miou:.4f} (epoch {result.best_epoch}) after "
          f"{result.seconds:.0f} s")  # fmt: skip
    return 0


def add_export(verbs: Any) -> None:
    export = verbs.add_parser("export", help="export a model (zoo name, module:function, or .onnx) into a bundle")
    export.add_argument("model", help="zoo name (see --list), package.module:function, or an existing .onnx file")
    export.add_argument("-o", "--output", required=True, help="bundle directory to create")
    add_size(export, None, "input HxW (default: the demo models' training size, else 256x256)")
    add_classes(
        export,
        "class count N, a standard set (cityscapes, camvid, voc, ade20k, kvasir), or a names file (one class per "
        "line, optional R G B); a binary (one-channel) model has two: background and foreground",
    )
    export.add_argument(
        "--threshold", type=probability, default=None,
        help="binary (one-channel) models: foreground where sigmoid(logit) > THRESHOLD (default 0.5, i.e. logit > 0)",
    )  # fmt: skip
    export.add_argument("--weights", help="state dict to load (torch.load with weights_only=True)")
    export.add_argument(
        "--opset", type=opset, default=17,
        help="ONNX opset, 11 to 20 (default 17: TensorRT 8.5 / JetPack 5 parse it; 13 for TensorRT 8.2 / JetPack 4.6)",
    )  # fmt: skip
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
    rgb = (("--mean", (0.485, 0.456, 0.406), "mean"), ("--std", (0.229, 0.224, 0.225), "std"))
    for flag, default, what in rgb:
        export.add_argument(flag, type=parse_triple, default=default, help=f"RGB {what} of the model's training data")
    add_model_args(export, "model constructor option, e.g. width=32 or upsample=bilinear")
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.set_defaults(handler=cmd_export, contradictions=(EXPORT_CONTRADICTION,))


def add_train(verbs: Any) -> None:
    train = verbs.add_parser("train", help="train a zoo model on labelled scenes (CPU)")
    train.add_argument("model", help="zoo name")
    add_data(train, "synthetic://driving, synthetic://medical, or a folder with images/ and labels/")
    train.add_argument(
        "-o", "--output", required=True, help="weights file to write (state dict with class names and colours)"
    )
    add_size(train, (240, 320), "training HxW (default 240x320)")
    add_classes(train, "class count or names file (synthetic scenes name their own)")
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
    add_model_args(train, "model option, e.g. width=16")
    add_threads(train)
    add_max_pixels(train)
    train.set_defaults(handler=cmd_train)

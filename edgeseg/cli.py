"""edgeseg's one entry point: edgeseg {export,info,run,demo}.

Every user mistake is an EdgesegError: printed as one line, exit status 1, no traceback.
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path
from typing import Any, Callable

from edgeseg import __version__
from edgeseg.errors import EdgesegError

EXIT_ERROR, EXIT_INTERRUPTED = 1, 130


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
def cmd_export(args: argparse.Namespace) -> int:
    from edgeseg.classes import classes_from_option
    from edgeseg.export import ExportOptions, export

    options = ExportOptions(
        size=args.size,
        classes=classes_from_option(args.classes),
        weights=Path(args.weights) if args.weights else None,
        opset=args.opset,
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        dynamic_size=args.dynamic_size,
        fuse_preprocess=not args.no_fuse_preprocess,
        fuse_argmax=not args.no_fuse_argmax,
        mean=args.mean,
        std=args.std,
        model_options=parse_model_args(args.arg),
        force=args.force,
    )
    bundle = export(args.model, Path(args.output), options)
    parity = bundle.manifest.get("parity", {})
    if "class_map_agreement" in parity:
        print(f"exported {args.model} -> {bundle.root}  (parity: {parity['class_map_agreement']:.4%} agreement, max |logit diff| {parity['max_abs_logit_diff']:.2e})")
    else:
        print(f"imported {args.model} -> {bundle.root}")
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from edgeseg.bundle import Bundle
    from edgeseg.info import describe_bundle

    bundle = Bundle.load(args.bundle)
    print(json.dumps(bundle.manifest, indent=2) if args.json else describe_bundle(bundle))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from edgeseg.runner import RunOptions, print_summary, run

    summary = run(RunOptions(
        bundle=Path(args.bundle), inputs=args.input, outputs=args.output or ["none"], backend=args.backend,
        precision=args.precision, frames=args.frames, filter_mode=args.filter_mode, alpha=args.alpha,
        visualize=args.visualize, save_mask=args.save_mask, legend=not args.no_legend, threads=args.threads,
    ))
    print_summary(summary, args.output or ["none"])
    return EXIT_INTERRUPTED if summary.interrupted else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeseg.demo import run_demo

    run_demo(args.scene, frames=args.frames, output=Path(args.output) if args.output else None, workdir=Path(args.workdir))
    return 0


# -- parser ------------------------------------------------------------------------------------
def add_run_options(parser: argparse.ArgumentParser) -> None:
    from edgeseg.runtime.backends import BACKENDS
    from edgeseg.runtime.overlay import FILTER_MODES, VISUALIZE

    parser.add_argument("--backend", choices=BACKENDS, default="auto", help="inference backend (default: auto, the fastest usable)")
    parser.add_argument("--precision", choices=["best", "fp32", "fp16", "int8"], default="best", help="artifact precision (default: best available)")
    parser.add_argument("--filter-mode", choices=FILTER_MODES, default="linear", help="mask upsampling: point (nearest) or linear (smooth); see docs")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity 0..1 (default 0.5)")
    parser.add_argument("--visualize", choices=VISUALIZE, default="overlay", help="what to draw: overlay, mask, or both side by side")
    parser.add_argument("--save-mask", action="store_true", help="folder outputs also keep raw class maps as PNG in masks/")
    parser.add_argument("--no-legend", action="store_true", help="do not draw the class legend")
    parser.add_argument("--threads", type=int, default=None, help="inference threads for the CPU backend")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edgeseg", description="PyTorch semantic segmentation to ONNX/TensorRT and live video at the edge.")
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")

    export = verbs.add_parser("export", help="export a model (zoo name, module:function, or .onnx) into a bundle")
    export.add_argument("model", help="zoo name (see --list), package.module:function, or an existing .onnx file")
    export.add_argument("-o", "--output", required=True, help="bundle directory to create")
    export.add_argument("--size", type=parse_size, default=(256, 256), help="input HxW (default 256x256)")
    export.add_argument("--classes", help="class count N, or a names file (one class per line, optional R G B)")
    export.add_argument("--weights", help="state dict to load (torch.load with weights_only=True)")
    export.add_argument("--opset", type=int, default=17, help="ONNX opset (default 17: TensorRT 8.5 / JetPack 5 parse it)")
    export.add_argument("--batch", type=int, default=1, help="fixed batch size (default 1)")
    export.add_argument("--dynamic-batch", action="store_true", help="export a dynamic batch dimension")
    export.add_argument("--dynamic-size", action="store_true", help="export dynamic height and width (not PSPNet)")
    export.add_argument("--no-fuse-preprocess", action="store_true", help="take float NCHW input instead of uint8 BGR frames")
    export.add_argument("--no-fuse-argmax", action="store_true", help="output float logits instead of a uint8 class map")
    export.add_argument("--mean", type=parse_triple, default=(0.485, 0.456, 0.406), help="RGB mean of the model's training data")
    export.add_argument("--std", type=parse_triple, default=(0.229, 0.224, 0.225), help="RGB std of the model's training data")
    export.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="model constructor option, e.g. width=32 or upsample=bilinear")
    export.add_argument("--force", action="store_true", help="replace an existing bundle")
    export.set_defaults(handler=cmd_export)

    info = verbs.add_parser("info", help="show a bundle's manifest")
    info.add_argument("bundle")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.set_defaults(handler=cmd_info)

    run = verbs.add_parser("run", help="segment a video, camera, stream or folder")
    run.add_argument("bundle")
    run.add_argument("-i", "--input", required=True, help="source URI: file, folder/, /dev/video0, rtsp://, synthetic://driving, ...")
    run.add_argument("-o", "--output", action="append", help="sink URI, repeatable: out.mp4, folder/, display://0, none (default none)")
    run.add_argument("--frames", type=int, default=None, help="stop after N frames")
    add_run_options(run)
    run.set_defaults(handler=cmd_run)

    demo = verbs.add_parser("demo", help="export the demo model and run it on a synthetic scene")
    demo.add_argument("scene", nargs="?", default="driving", choices=["driving", "medical"])
    demo.add_argument("--frames", type=int, default=150, help="frames to render (default 150)")
    demo.add_argument("-o", "--output", help="video to write (default out/demo-SCENE.mp4)")
    demo.add_argument("--workdir", default="out", help="where the demo bundle and video go (default out/)")
    demo.set_defaults(handler=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except EdgesegError as exc:
        print(f"edgeseg: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("edgeseg: interrupted; nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())

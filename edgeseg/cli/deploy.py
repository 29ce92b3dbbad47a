"""edgeseg deploy, info and dataset: what DeepStream or Triton consume, what a bundle holds, a labelled folder."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeseg.arguments import count, non_negative
from edgeseg.cli.groups import add_max_pixels, add_precision, add_sources, add_streams
from edgeseg.errors import EdgesegError


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


def cmd_info(args: argparse.Namespace) -> int:
    from edgeseg.bundle import Bundle
    from edgeseg.tools.info import describe_bundle

    bundle = Bundle.load(args.bundle)
    print(json.dumps(bundle.manifest, indent=2) if args.json else describe_bundle(bundle))
    return 0


def cmd_dataset(args: argparse.Namespace) -> int:
    from edgeseg.tools.dataset import write_labelled_folder

    written = write_labelled_folder(args.source, Path(args.output), force=args.force)
    print(f"wrote {written} labelled frames to {args.output}/images and {args.output}/labels")
    return 0


def add_deploy(verbs: Any) -> None:
    from edgeseg.deploy.calibration_cache import JETPACK_CHOICES

    deploy = verbs.add_parser("deploy", help="emit a DeepStream or Triton deployment from a bundle")
    deploy.add_argument("bundle")
    deploy.add_argument("--target", required=True, help="deepstream or triton")
    deploy.add_argument(
        "-o", "--output", required=True,
        help="directory to write (refused when it exists and is not empty, unless --force)",
    )  # fmt: skip
    add_precision(deploy, "best")
    add_streams(deploy, "DeepStream: sources batched by nvstreammux (default: the -i count, or 1)")
    add_sources(deploy, "DeepStream: a source URI (repeat per camera; default: NVIDIA's sample video)", many=True)
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
    deploy.add_argument("--force", action="store_true", help="replace an existing output directory")
    deploy.set_defaults(handler=cmd_deploy)


def add_info(verbs: Any) -> None:
    info = verbs.add_parser("info", help="show a bundle's manifest")
    info.add_argument("bundle")
    info.add_argument("--json", action="store_true", help="print the manifest as JSON")
    info.set_defaults(handler=cmd_info)


def add_dataset(verbs: Any) -> None:
    dataset = verbs.add_parser("dataset", help="write a labelled source as a folder (images/ + labels/)")
    dataset.add_argument("source", help="e.g. synthetic://medical?seed=5&frames=200&size=320x240")
    dataset.add_argument("-o", "--output", required=True)
    dataset.add_argument("--force", action="store_true", help="replace an existing folder")
    add_max_pixels(dataset)
    dataset.set_defaults(handler=cmd_dataset)

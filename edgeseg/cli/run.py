"""edgeseg run and edgeseg demo: a bundle on live video, streams, files or folders; the demo on a synthetic scene."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from edgeseg.arguments import parse_size
from edgeseg.cli.groups import (
    VIEW_CONTRADICTION,
    add_backend,
    add_dla,
    add_frames,
    add_kind_flags,
    add_max_pixels,
    add_overlay,
    add_precision,
    add_sources,
    add_stream,
    add_threads,
    add_view_access,
    kind_options,
    overlay_options,
    stream_options,
    triton_options,
    view_access_of,
)

EXIT_INTERRUPTED = 130


def cmd_run(args: argparse.Namespace) -> int:
    from edgeseg.redact import redact_all
    from edgeseg.runtime.run import RunOptions, print_summary, run

    outputs = args.output or ["none"]
    summary = run(
        RunOptions(
            bundle=Path(args.bundle),
            inputs=args.input,
            outputs=outputs,
            backend=args.backend,
            precision=args.precision,
            frames=args.frames,
            threads=args.threads,
            stream=stream_options(args),
            triton=triton_options(args),
            view=view_access_of(args),
            dla_core=args.dla,
            infer_size=args.infer_size,
            **overlay_options(args),
            **kind_options(args),
        )
    )
    print_summary(summary, redact_all(outputs))  # a sink's password never reaches the summary
    return EXIT_INTERRUPTED if summary.interrupted else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edgeseg.tools.demo import run_demo

    run_demo(
        args.scene, frames=args.frames, output=Path(args.output) if args.output else None, workdir=Path(args.workdir)
    )
    return 0


def add_run(verbs: Any) -> None:
    run = verbs.add_parser("run", help="segment, detect or find keypoints in a video, camera, stream or folder")
    run.add_argument("bundle")
    add_sources(
        run,
        "source URI: file, folder/, /dev/video0, rtsp://, gst://, synthetic://driving, ...; repeat it for several "
        "cameras in one run (batched inference; {stream} or {index} in -o paths)",
        many=True,
        required=True,
    )
    run.add_argument(
        "-o", "--output", action="append",
        help="sink URI, repeatable: out.mp4, folder/, display://0, http://127.0.0.1:8080/ (live view), none "
        "(default none)",
    )  # fmt: skip
    add_frames(run, None, "stop after N frames")
    add_backend(run)
    add_precision(run, "best")
    add_threads(run)
    add_dla(run, "run the TensorRT engine built with build --dla CORE on that DLA core (default: the GPU engine)")
    run.add_argument(
        "--infer-size", type=parse_size, default=None, metavar="HxW",
        help="run a bundle exported with --dynamic-size at this input size (default: the size it was exported at)",
    )  # fmt: skip
    add_max_pixels(run)
    add_stream(run)
    add_view_access(run)
    add_overlay(run)
    add_kind_flags(run)
    run.set_defaults(handler=cmd_run, contradictions=(VIEW_CONTRADICTION,))


def add_demo(verbs: Any) -> None:
    demo = verbs.add_parser("demo", help="export the demo model and run it on a synthetic scene")
    demo.add_argument("scene", nargs="?", default="driving", choices=["driving", "medical"])
    add_frames(demo, 150, "frames to render (default 150)")
    demo.add_argument("-o", "--output", help="video to write (default out/demo-SCENE.mp4)")
    demo.add_argument("--workdir", default="out", help="where the demo bundle and video go (default out/)")
    demo.set_defaults(handler=cmd_demo)

"""The `edgeseg` parser: one sub-parser per verb, each added by its own module from the shared groups."""

from __future__ import annotations

import argparse

from edgeseg import __version__
from edgeseg.arguments import Parser
from edgeseg.cli.bench import add_bench
from edgeseg.cli.build import add_build, add_check, add_doctor
from edgeseg.cli.calibrate import add_calibrate, add_eval
from edgeseg.cli.deploy import add_dataset, add_deploy, add_info
from edgeseg.cli.export import add_export, add_train
from edgeseg.cli.groups import add_verbose
from edgeseg.cli.run import add_demo, add_run

# In the order `edgeseg --help` lists them: a model's way from PyTorch to a device, then the helpers.
VERBS = (
    add_export,
    add_info,
    add_run,
    add_train,
    add_eval,
    add_calibrate,
    add_bench,
    add_build,
    add_check,
    add_doctor,
    add_deploy,
    add_dataset,
    add_demo,
)


def build_parser() -> argparse.ArgumentParser:
    """Every verb's parser. Building it imports the runtime's constants (and so OpenCV), never torch or onnx."""
    parser = Parser(
        prog="edgeseg",
        description="PyTorch segmentation, instance (Mask R-CNN) and keypoint models to ONNX/TensorRT, and live "
        "video at the edge.",
    )
    parser.add_argument("--version", action="version", version=f"edgeseg {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for add_verb in VERBS:
        add_verb(verbs)
    for verb_parser in verbs.choices.values():  # so a check after parsing can answer as the verb would
        verb_parser.set_defaults(verb_parser=verb_parser)
        add_verbose(verb_parser)
    return parser

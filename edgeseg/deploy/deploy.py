"""`edgeseg deploy`: what DeepStream and Triton Inference Server consume, generated from a bundle.

edgeseg does not grow a server: many cameras on one device go to DeepStream (nvstreammux
batching, nvinfer network-type=2), fleets of GPUs to Triton (model repository, dynamic batching).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.deploy.deepstream import write_deepstream
from edgeseg.deploy.options import DeployOptions
from edgeseg.deploy.triton import write_triton
from edgeseg.errors import EdgesegError
from edgeseg.fileio import refuse_non_empty

TARGETS = ("deepstream", "triton")


def prepare_output(output: Path, force: bool) -> None:
    """An existing non-empty directory is refused unless --force (then it is replaced)."""
    refuse_non_empty(output, force)
    if output.is_dir():
        shutil.rmtree(output)


def deploy(bundle_dir: Path, output: Path, options: DeployOptions) -> list[Path]:
    if options.target not in TARGETS:
        raise EdgesegError(f"unknown --target '{options.target}'; choose one of: {', '.join(TARGETS)}")
    bundle = Bundle.load(bundle_dir)
    if bundle.is_instances and options.target == "deepstream":
        # nvinfer parses boxes for detectors and class maps for segmentation; per-instance masks need a custom
        # parse function compiled against DeepStream (NvDsInferParseCustom...), which edgeseg does not write.
        raise EdgesegError(
            "DeepStream's nvinfer needs a custom output parser for instance masks (a C++ NvDsInferParseCustom "
            "function), which edgeseg does not generate; a config without one cannot work: use edgeseg run"
        )
    if bundle.is_keypoints:
        raise EdgesegError(
            f"bundle {bundle.root} is a keypoint model: edgeseg deploy writes DeepStream and Triton configs for "
            "segmentation bundles so far (nvinfer has no keypoint output parser); run it with edgeseg run"
        )
    prepare_output(Path(output), options.force)
    if options.target == "deepstream":
        return write_deepstream(bundle, Path(output), options)
    return write_triton(bundle, Path(output), options)

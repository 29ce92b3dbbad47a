"""`edgeseg deploy`: what DeepStream and Triton Inference Server consume, generated from a bundle.

edgeseg does not grow a server: many cameras on one device go to DeepStream (nvstreammux
batching, nvinfer network-type=2), fleets of GPUs to Triton (model repository, dynamic batching).

The output folder is written whole or not at all (fileio.atomic_directory): every graph is checked inside the
scratch folder, so a graph that fails its check leaves no output, and a rerun needs no --force.
"""

from __future__ import annotations

import sys
from pathlib import Path

from edgeseg.bundle import Bundle
from edgeseg.deploy.deepstream import APP_CONFIG, write_deepstream
from edgeseg.deploy.options import DeployOptions
from edgeseg.deploy.triton import write_triton
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_directory
from edgeseg.redact import has_secret, redact

TARGETS = ("deepstream", "triton")
# What deploy cannot write, by the manifest's output kind and --target (a kind not listed deploys to both): the one
# place deploy reads a bundle's kind.
REFUSED: dict[str, dict[str, str]] = {
    # nvinfer parses boxes for detectors and class maps for segmentation; per-instance masks need a custom parse
    # function compiled against DeepStream (NvDsInferParseCustom...), which edgeseg does not write.
    "instances": {
        "deepstream": "DeepStream's nvinfer needs a custom output parser for instance masks (a C++ "
        "NvDsInferParseCustom function), which edgeseg does not generate; a config without one cannot work: use "
        "edgeseg run"
    },
    "keypoints": dict.fromkeys(
        TARGETS,
        "bundle {root} is a keypoint model: edgeseg deploy writes DeepStream and Triton configs for segmentation "
        "bundles so far (nvinfer has no keypoint output parser); run it with edgeseg run",
    ),
}


def deploy(bundle_dir: Path, output: Path, options: DeployOptions) -> list[Path]:
    """Write the deployment into a scratch folder, check it there, then move it to `output`; the files written."""
    if options.target not in TARGETS:
        raise EdgesegError(f"unknown --target '{options.target}'; choose one of: {', '.join(TARGETS)}")
    bundle = Bundle.load(bundle_dir)
    refusal = REFUSED.get(bundle.output.kind, {}).get(options.target)
    if refusal:
        raise EdgesegError(refusal.format(root=bundle.root))
    output = Path(output)
    secrets = [redact(uri) for uri in options.inputs if has_secret(uri)]
    if options.target == "triton" and options.inputs:
        print(
            f"edgeseg: note: -i {' -i '.join(redact(uri) for uri in options.inputs)} ignored: a Triton model "
            "repository names no sources (clients send the frames); -i is for --target deepstream",
            file=sys.stderr,
        )
    with atomic_directory(output, replace=options.force) as scratch:
        if options.target == "deepstream":
            written = write_deepstream(bundle, scratch, options)
        else:
            written = write_triton(bundle, scratch, options)
    if options.target == "deepstream" and secrets:
        # Said once the file is in place: deepstream-app reads the camera URI from nowhere else.
        print(
            f"edgeseg: note: {output / APP_CONFIG} holds the credentials of {', '.join(secrets)} (deepstream-app "
            "connects with them): written with mode 0600, readable by its owner only; every other file shows them "
            "as ***",
            file=sys.stderr,
        )
    return [output / path.relative_to(scratch) for path in written]

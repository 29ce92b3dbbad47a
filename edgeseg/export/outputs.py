"""What a user's model returns, known before anything is exported: one probe run, one verdict.

edgeseg exports semantic models (N x C x H x W class logits, or one channel for a binary model), alone or in a dict
or tuple as torchvision's and segmentation-models-pytorch's models return them. Everything else (a detector's list
of dicts, a classifier's vector per image, a feature map far smaller than the frame) is refused in one line that
names what the model returned and what edgeseg takes, before a file is written.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from edgeseg.bundle import ClassInfo
from edgeseg.classes import numbered_classes
from edgeseg.errors import EdgesegError

TAKES = (
    "edgeseg exports semantic models that return class logits N x C x H x W (C >= 2), or N x 1 x H x W for a binary "
    "model, as a tensor or under 'out' in a dict"
)
DETECTION_KEYS = {"boxes", "labels", "scores", "masks", "keypoints"}


@dataclass(frozen=True)
class OutputShape:
    """The verdict on a model's output: 'semantic' (C >= 2 channels of logits) or 'binary' (one channel)."""

    kind: str
    channels: int  # the logits' channels: 1 for a binary model
    described: str  # what the model returned, in words, for messages and the manifest
    squeezed: bool = False  # the model returns N x H x W: the graph adds the channel axis back


def describe(output: Any, depth: int = 0) -> str:
    """A short description of any output: 'a tensor 1x21x64x64', 'a list of 1 dict (boxes, labels, ...)'."""
    import torch

    if isinstance(output, torch.Tensor):
        return f"a tensor {'x'.join(str(d) for d in output.shape) or 'scalar'} ({str(output.dtype).split('.')[-1]})"
    if isinstance(output, dict):
        keys = ", ".join(str(k) for k in list(output)[:6])
        return f"a dict ({keys})" if depth else f"a dict with keys {keys}"
    if isinstance(output, (list, tuple)):
        kind = type(output).__name__
        if not output:
            return f"an empty {kind}"
        if depth:
            return f"a {kind} of {len(output)}"
        return f"a {kind} of {len(output)}: {describe(output[0], depth + 1)}{', ...' if len(output) > 1 else ''}"
    return f"a {type(output).__name__}"


def is_detections(output: Any) -> bool:
    """torchvision's detection models: one dict per image with boxes, labels, scores (and masks or keypoints)."""
    return (
        isinstance(output, (list, tuple))
        and bool(output)
        and all(isinstance(item, dict) and {"boxes", "scores"} <= set(item) for item in output)
    )


def main_output(output: Any) -> Any:
    """The tensor edgeseg would export: the tensor itself, 'out' (or the first value) of a dict, the first of a
    tuple or list; None where there is none."""
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict) and output:
        return main_output(output["out"] if "out" in output else next(iter(output.values())))
    if isinstance(output, (tuple, list)) and output:
        return main_output(output[0])
    return None


def classify_output(spec: str, output: Any, input_size: tuple[int, int]) -> OutputShape:
    """The verdict on what `spec` returned for one N x 3 x H x W input of `input_size`; raises EdgesegError (one
    line, naming what it returned and what edgeseg takes) for anything edgeseg cannot serve."""
    described = describe(output)
    if is_detections(output):
        keys = ", ".join(k for k in output[0] if k in DETECTION_KEYS) or ", ".join(output[0])
        raise EdgesegError(
            f"'{spec}' returned detections (a {type(output).__name__} with one dict per image: {keys}), as "
            "torchvision's detection models do; a detector's variable number of detections per frame has no "
            f"fixed-size graph edgeseg can check and build; {TAKES}, and instance models from its own zoo "
            "(edgeseg export maskrcnn: fixed-size boxes, scores, classes, masks)"
        )
    tensor = main_output(output)
    if tensor is None:
        raise EdgesegError(f"'{spec}' returned {described}, with no tensor in it; {TAKES}")
    if not tensor.is_floating_point():
        raise EdgesegError(
            f"'{spec}' returned {described}: integer values (a class map?), which edgeseg cannot check against "
            f"PyTorch or quantize; {TAKES} (it fuses the argmax itself)"
        )
    if tensor is not output:
        described = f"{described}, of which {describe(tensor)}"
    height, width = input_size
    if tensor.dim() == 2:
        raise EdgesegError(
            f"'{spec}' returned {described}: a vector of {tensor.shape[1]} scores per image (a classifier), not a "
            f"map per pixel; {TAKES}"
        )
    squeezed = tensor.dim() == 3
    if squeezed:
        tensor = tensor.unsqueeze(1)
    if tensor.dim() != 4:
        raise EdgesegError(f"'{spec}' returned {described}; {TAKES}")
    out_height, out_width = tensor.shape[-2:]
    if (out_height, out_width) != (height, width):
        if out_height * 2 <= height or out_width * 2 <= width:
            raise EdgesegError(
                f"'{spec}' returned {described}, a map at {out_height}x{out_width} for a {height}x{width} input; "
                f"{TAKES}, at the input's size: upsample the logits in the model (F.interpolate to x.shape[-2:])"
            )
    return verdict(int(tensor.shape[1]), described, squeezed)


def verdict(channels: int, described: str, squeezed: bool = False) -> OutputShape:
    """Logits of `channels` channels: one is a binary model (its sigmoid thresholded), more are classes."""
    return OutputShape("binary" if channels == 1 else "semantic", channels, described, squeezed)


# A binary model's classes when --classes names none: what it finds, on black.
BINARY_CLASSES = [ClassInfo("background", (0, 0, 0)), ClassInfo("foreground", (255, 255, 255))]


def model_classes(spec: str, returned: OutputShape, given: list[ClassInfo] | None) -> list[ClassInfo]:
    """The classes of what the model returns: numbered when none are given; a binary model's two (background and
    foreground, or what --classes names)."""
    if returned.kind == "binary":
        classes = given or BINARY_CLASSES
        if len(classes) != 2:
            raise EdgesegError(
                f"'{spec}' returns one channel (binary segmentation: background and foreground) but "
                f"{len(classes)} class names were given; give two, e.g. --classes kvasir"
            )
        return classes
    classes = given or numbered_classes(returned.channels)
    if len(classes) != returned.channels:
        raise EdgesegError(
            f"'{spec}' predicts {returned.channels} classes but {len(classes)} class names were given; fix --classes"
        )
    return classes


def binary_record(spec: str, returned: OutputShape, threshold: float | None) -> dict[str, Any] | None:
    """The manifest's model.binary for a binary model (its --threshold, default 0.5, and what it returned); None for
    a model of several classes, which --threshold does not apply to (one line if it was given)."""
    if returned.kind != "binary":
        if threshold is not None:
            raise EdgesegError(
                f"--threshold is for binary models (one output channel); '{spec}' returns {returned.channels} "
                "channels, whose class is their argmax: drop --threshold"
            )
        return None
    threshold = 0.5 if threshold is None else threshold
    if not 0.0 < threshold < 1.0:
        raise EdgesegError(f"--threshold {threshold:g}: a probability strictly between 0 and 1 (default 0.5)")
    return {"threshold": threshold, "returned": returned.described}


def threshold_logit(model_info: dict[str, Any]) -> float:
    """The logit a binary model's foreground must exceed: log(t / (1 - t)), 0 for t = 0.5; 0 for other models."""
    binary = model_info.get("binary")
    if not binary:
        return 0.0
    threshold = binary["threshold"]
    return math.log(threshold / (1.0 - threshold))


def probe_output(spec: str, model: Any, size: tuple[int, int]) -> OutputShape:
    """Run the model once on a zero frame of `size` and classify what it returns."""
    import torch

    try:
        with torch.no_grad():
            output = model(torch.zeros(1, 3, *size))
    except Exception as exc:  # the user's model fails on a frame of this size
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise EdgesegError(f"'{spec}' fails on a 1x3x{size[0]}x{size[1]} input: {reason}; check --size") from None
    return classify_output(spec, output, size)

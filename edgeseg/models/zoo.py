"""The zoo: each model family by name, its constructor, stride and default size; the shipped demo weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.errors import EdgesegError


@dataclass(frozen=True)
class ZooEntry:
    family: str
    build: Callable[..., Any]  # (num_classes, **options) -> nn.Module
    size_multiple: int  # --size must be a multiple of this (the net's total stride, or more)
    dynamic_size: bool  # False: the graph only exports for the size it was traced at
    defaults: dict[str, Any]
    weights: str | None = None  # a checkpoint shipped in edgeseg/weights (the trained demo models)
    default_size: tuple[int, int] | None = None  # the size the shipped weights were trained at
    kind: str = "semantic"  # "instances": boxes, classes and masks per object; "keypoints": heatmaps per keypoint


def _fcn(variant: int) -> Callable[..., Any]:
    def build(num_classes: int, **options: Any) -> Any:
        from edgeseg.models.fcn import FCN

        return FCN(num_classes, variant=variant, **options)

    return build


def _lazy(module: str, name: str) -> Callable[..., Any]:
    def build(num_classes: int, **options: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(f"edgeseg.models.{module}"), name)(num_classes, **options)

    return build


ZOO: dict[str, ZooEntry] = {
    "fcn32s": ZooEntry("FCN-32s", _fcn(32), 32, True, {"width": 16}),
    "fcn16s": ZooEntry("FCN-16s", _fcn(16), 32, True, {"width": 16}),
    "fcn8s": ZooEntry("FCN-8s", _fcn(8), 32, True, {"width": 16}),
    "unet": ZooEntry("U-Net", _lazy("unet", "UNet"), 16, True, {"width": 16}),
    "deeplabv3": ZooEntry("DeepLabV3", _lazy("deeplab", "DeepLabV3"), 16, True, {"width": 16}),
    "deeplabv3plus": ZooEntry("DeepLabV3+", _lazy("deeplab", "DeepLabV3Plus"), 16, True, {"width": 16}),
    # Stride 8 times the largest pyramid bin (6): adaptive pooling needs exact bins to export.
    "pspnet": ZooEntry("PSPNet", _lazy("pspnet", "PSPNet"), 48, False, {"width": 16}),
    "lraspp": ZooEntry("LR-ASPP", _lazy("lraspp", "LRASPP"), 16, True, {"width": 16}),
    # Trained by `edgeseg train` on the synthetic scenes; the commands are in edgeseg/weights/README.md.
    # Anchors are constants of the graph: the input size is fixed at export.
    "maskrcnn": ZooEntry(
        "Mask R-CNN", _lazy("maskrcnn", "MaskRCNN"), 16, False, {"width": 16}, default_size=(240, 320), kind="instances"
    ),
    # Heatmaps at 1/4 of the input; the hourglass pools to 1/64 and upsamples to each skip's size, so any multiple
    # of 16 lines up. The build's first argument is the number of keypoints.
    "hourglass": ZooEntry(
        "Stacked Hourglass", _lazy("hourglass", "StackedHourglass"), 16, False, {"width": 16, "stacks": 2},
        default_size=(240, 320), kind="keypoints"
    ),
    "demo-driving": ZooEntry(
        "DeepLabV3+ (demo, synthetic driving)",
        _lazy("deeplab", "DeepLabV3Plus"),
        16,
        True,
        {"width": 16},
        "demo-driving.pt",
        (240, 320),
    ),
    "demo-driving-instances": ZooEntry(
        "Mask R-CNN (demo, synthetic driving instances)",
        _lazy("maskrcnn", "MaskRCNN"),
        16,
        False,
        {"width": 16},
        "demo-driving-instances.pt",
        (240, 320),
        kind="instances",
    ),
    "demo-medical": ZooEntry(
        "U-Net (demo, synthetic endoscopy)",
        _lazy("unet", "UNet"),
        16,
        True,
        {"width": 8},
        "demo-medical.pt",
        (240, 320),
    ),
    "demo-medical-tips": ZooEntry(
        "Stacked Hourglass (demo, synthetic endoscopy instrument keypoints)",
        _lazy("hourglass", "StackedHourglass"),
        16,
        False,
        {"width": 16, "stacks": 2},
        "demo-medical-tips.pt",
        (240, 320),
        kind="keypoints",
    ),
}


def shipped_weights(entry: ZooEntry) -> Path | None:
    """The packaged checkpoint of a demo entry; a missing file means a broken install, said in one line."""
    if entry.weights is None:
        return None
    path = Path(__file__).resolve().parent.parent / "weights" / entry.weights
    if not path.is_file():
        raise EdgesegError(
            f"the shipped weights {path} are missing; reinstall edgeseg or retrain them (edgeseg/weights/README.md)"
        )
    return path


def zoo_entry(name: str) -> ZooEntry:
    try:
        return ZOO[name]
    except KeyError:
        raise EdgesegError(f"unknown zoo model '{name}'; choose one of: {', '.join(sorted(ZOO))}") from None


def check_size(name: str, size: tuple[int, int]) -> ZooEntry:
    """The entry, after checking that a (height, width) suits its stride; one line where it does not."""
    entry = zoo_entry(name)
    height, width = size
    if height % entry.size_multiple or width % entry.size_multiple:
        raise EdgesegError(f"--size {height}x{width}: {name} needs multiples of {entry.size_multiple}")
    return entry


def build_model(name: str, num_classes: int, **options: Any) -> Any:
    """Build a zoo model in eval mode; options (width, upsample, ...) go to the family's constructor."""
    entry = zoo_entry(name)
    try:
        model = entry.build(num_classes, **{**entry.defaults, **options})
    except (TypeError, ValueError) as exc:
        raise EdgesegError(f"cannot build '{name}' with options {options}: {exc}") from None
    return model.eval()

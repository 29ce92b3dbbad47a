"""What calibration does differently for each kind of bundle, decided once from the manifest's output kind.

A profile answers what calibrate asks of a kind: its INT8 target option, the fidelity measure that judges a variant
against FP32 (fidelity.py, instance_fidelity.py, keypoint_fidelity.py), what the quantization recipes become, which
layers are measured and which nodes are quantized at all, and which nodes stay float in FP16 and in INT8. Calibrate
asks the profile and never branches on the kind itself; `profile_for(bundle)` is the one place that reads it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeseg.bundle import Bundle
from edgeseg.calibration.dataset import HeldOut
from edgeseg.calibration.fidelity import ClassMapFidelity, FidelityMeasure
from edgeseg.calibration.instance_fidelity import InstanceFidelity
from edgeseg.calibration.keypoint_fidelity import KeypointFidelity
from edgeseg.calibration.quantize import (
    FEATURE_MAP_OPS,
    INSTANCE_WEIGHTED_OPS,
    QuantRecipe,
    decoder_tail_nodes,
    feature_map_nodes,
    float_boundary_nodes,
    for_instances,
    input_head_nodes,
    outside_feature_maps,
    weighted_nodes,
)


@dataclass(frozen=True)
class TargetOption:
    """The option that sets a kind's INT8 accuracy target: CalibrateOptions' field, its flag, what it is counted in."""

    field: str
    flag: str
    unit: str


class CalibrationProfile:
    """A semantic bundle's calibration; the other kinds override what differs."""

    kinds: tuple[str, ...] = ("class_map", "logits")
    what = "semantic segmentation"  # how refusals name the kind
    target = TargetOption("min_agreement", "--min-agreement", "pixel agreement")
    measure: type[FidelityMeasure] = ClassMapFidelity  # judges each variant against FP32 on the held-out frames

    def fidelity(self, bundle: Bundle, fp32_path: Path, held_out: HeldOut, options: Any) -> FidelityMeasure:
        """The kind's fidelity measure on the held-out frames, with the user's target (None: the default bar)."""
        return self.measure(bundle, fp32_path, held_out, options.threads, getattr(options, self.target.field))

    def recipe(self, recipe: QuantRecipe) -> QuantRecipe:
        """A quantization recipe as this kind's graph takes it."""
        return recipe

    def weighted_layers(self, model: Any) -> list[str]:
        """The layers whose precision sensitivity is measured (and without which INT8 buys nothing)."""
        return weighted_nodes(model)

    def decoder_tail(self, model: Any) -> list[str]:
        """Nodes after the last layer that stay float in FP16 and INT8 (a keypoint graph's peak decoder)."""
        return []

    def quantizable(self, model: Any) -> list[str] | None:
        """The only nodes a recipe may quantize, or None: wherever the recipe's operator types apply."""
        return None

    def fp16_float(self, model: Any, tail: list[str]) -> frozenset[str]:
        """The nodes the FP16 graph keeps float32 whatever their ranges."""
        return frozenset(tail)

    def int8_boundary(self, model: Any, tail: list[str]) -> list[str]:
        """The nodes INT8 leaves float: the fused preprocessing and the logits-to-argmax tail (the logits stay float,
        so the argmax sees no quantization ties)."""
        return float_boundary_nodes(model)


class InstanceProfile(CalibrationProfile):
    """Instance bundles (Mask R-CNN): quantized on the feature maps only; boxes, NMS and RoIAlign stay float."""

    kinds = ("instances",)
    what = "instances"
    target = TargetOption("max_ap_drop", "--max-ap-drop", "mask AP points")
    measure = InstanceFidelity

    def recipe(self, recipe: QuantRecipe) -> QuantRecipe:
        return for_instances(recipe)

    def weighted_layers(self, model: Any) -> list[str]:
        return weighted_nodes(model, INSTANCE_WEIGHTED_OPS)  # the box head's Gemms too

    def quantizable(self, model: Any) -> list[str] | None:
        return feature_map_nodes(model, FEATURE_MAP_OPS)

    def fp16_float(self, model: Any, tail: list[str]) -> frozenset[str]:
        return outside_feature_maps(model)

    def int8_boundary(self, model: Any, tail: list[str]) -> list[str]:
        # No logits tail: what stays float beyond the preprocessing is outside quantizable() already.
        return input_head_nodes(model) + tail


class KeypointProfile(CalibrationProfile):
    """Keypoint bundles (heatmaps): the decoder after the last layer stays float, as a semantic graph's logits tail
    does (see quantize.decoder_tail_nodes)."""

    kinds = ("keypoints",)
    what = "keypoints"
    target = TargetOption("max_pck_drop", "--max-pck-drop", "PCK@0.05 points")
    measure = KeypointFidelity

    def decoder_tail(self, model: Any) -> list[str]:
        return decoder_tail_nodes(model)

    def int8_boundary(self, model: Any, tail: list[str]) -> list[str]:
        return input_head_nodes(model) + tail


PROFILES: dict[str, CalibrationProfile] = {
    kind: profile for profile in (CalibrationProfile(), InstanceProfile(), KeypointProfile()) for kind in profile.kinds
}


def profile_for(bundle: Bundle) -> CalibrationProfile:
    """The calibration profile of a bundle's output kind (checked against OUTPUT_KINDS on load)."""
    return PROFILES[bundle.output.kind]

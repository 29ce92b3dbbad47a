"""`edgeseg info`: a bundle's manifest, readable."""

from __future__ import annotations

from edgeseg.bundle import Bundle, int8_buys_nothing
from edgeseg.tables import format_table, printable


def describe_bundle(bundle: Bundle) -> str:
    manifest = bundle.manifest
    model, contract_in = manifest["model"], bundle.input
    batch = "dynamic" if contract_in.batch is None else contract_in.batch
    lines = [
        f"bundle   {bundle.root}  (schema {manifest['schema']}, edgeseg {manifest.get('edgeseg_version', '?')}, "
        f"{manifest.get('created', '')})",
        f"model    {model.get('name')}  [{model.get('family')}, from {model.get('source')}, "
        f"{figure(model.get('parameters'), ',')} parameters]",
        f"input    {contract_in.name}: {contract_in.dtype} {contract_in.layout} {contract_in.color_order}, "
        f"{contract_in.size[0]}x{contract_in.size[1]}{' (dynamic size)' if contract_in.dynamic_size else ''}, batch "
        f"{batch}, "
        f"preprocessing {'fused into the graph' if contract_in.fused_preprocess else 'done by the runtime'}",
        output_line(bundle),
        f"classes  {len(bundle.classes)}: "
        + ", ".join(f"{printable(c.name)} {tuple(c.color)}" for c in bundle.classes),
        "",
        format_table(
            ["artifact", "kind", "precision", "target", "sha256", "made by"],
            [
                [
                    a.path,
                    a.kind,
                    a.precision,
                    a.target,
                    a.sha256[:12],
                    ", ".join(f"{k} {v}" for k, v in a.tools.items()),
                ]
                for a in bundle.artifacts
            ],
        ),
    ]
    if any("fidelity" in a.extra for a in bundle.artifacts):
        lines += ["", fidelity_table(bundle)]
    parity = manifest.get("parity")
    if parity and "class_map_agreement" in parity:
        lines += [
            "",
            f"parity   PyTorch vs ONNX Runtime on {figure(parity.get('frames'), 'd')} frames: "
            f"{figure(parity['class_map_agreement'], '.4%')} class-map agreement, "
            f"max |logit diff| {figure(parity.get('max_abs_logit_diff'), '.2e')}",
        ]
    elif parity and "mean_mask_iou" in parity:
        lines += [
            "",
            f"parity   PyTorch vs ONNX Runtime on {figure(parity.get('frames'), 'd')} frames: "
            f"{figure(parity.get('detections'), 'd')} detections, boxes within "
            f"{figure(parity.get('max_box_diff_px'), '.2g')} px, mask IoU {figure(parity['mean_mask_iou'], '.4f')}",
        ]
    elif parity and "peaks" in parity:
        lines += [
            "",
            f"parity   PyTorch vs ONNX Runtime on {figure(parity.get('frames'), 'd')} frames: "
            f"{figure(parity.get('peaks'), 'd')} confident peaks, {figure(parity.get('unmatched_peaks'), 'd')} "
            f"without a twin within 2 px, max |diff| {figure(parity.get('max_abs_diff'), '.2e')}",
        ]
    elif parity:
        lines += ["", f"parity   {parity.get('reference')}"]
    return "\n".join(lines)


def output_line(bundle: Bundle) -> str:
    contract = bundle.output
    if bundle.is_instances:
        details = bundle.manifest.get("instances", {})
        outputs = details.get("outputs", [])
        return (
            f"output   instances: {', '.join(printable(str(o)) for o in outputs)}; up to "
            f"{figure(details.get('max_detections'), 'd')} detections, "
            f"{figure(details.get('mask_size'), 'd')}x{figure(details.get('mask_size'), 'd')} masks"
        )
    if bundle.is_keypoints:
        details = bundle.manifest["keypoints"]
        shape = (f"(x, y, confidence) of the {details['peaks']} highest peaks per keypoint, decoded in the graph"
                 if contract.fused_argmax else f"heatmaps at 1/{details['stride']}, decoded by the runtime")
        return f"output   {contract.name}: {', '.join(printable(n) for n in details['names'])}; {shape}"
    return (
        f"output   {contract.name}: {contract.kind} ({contract.dtype}), argmax "
        f"{'fused into the graph' if contract.fused_argmax else 'done by the runtime'}"
    )


def figure(value: object, spec: str, scale: float = 1.0) -> str:
    """A measured figure from the manifest, formatted; '-' when absent, '?' when it is not a number."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "?"
    value = value * scale if scale != 1.0 else value
    if spec.endswith("d"):  # a count: a hand-edited manifest may hold 3.0 (shown as 3) or 2.5 (not a count)
        if isinstance(value, float) and not value.is_integer():
            return "?"
        value = int(value)
    return format(value, spec)


def percent(value: object) -> str:
    return figure(value, ".2f", 100.0) + (
        "%" if isinstance(value, (int, float)) and not isinstance(value, bool) else ""
    )


def float_layer_count(extra: dict) -> str:
    """How many layers stayed float, and how many of them only because float ran faster there."""
    counted = [extra.get(key) for key in ("float_layers", "float_for_speed")]
    count, for_speed = (len(v) if isinstance(v, list) else 0 for v in counted)
    return f"{count} ({for_speed} for speed)" if for_speed else str(count)


def points(change: float | None) -> str:
    """A change of a 0..1 score in points (hundredths)."""
    return figure(change, "+.2f", 100.0) + (" pt" if change is not None else "")


def fidelity_table(bundle: Bundle) -> str:
    """What each precision variant costs against FP32 on held-out frames: pixel agreement and mIoU for a semantic
    bundle, detection agreement and COCO AP for an instance bundle, peak agreement and PCK for a keypoint bundle."""
    instances, keypoints = bundle.is_instances, bundle.is_keypoints
    rows = []
    for artifact in bundle.artifacts:
        fidelity = artifact.extra.get("fidelity")
        if not isinstance(fidelity, dict):
            continue
        ratio = artifact.extra.get("cpu_latency_ratio")
        if instances:
            accuracy = [figure(fidelity.get("box_ap"), ".4f"), figure(fidelity.get("mask_ap"), ".4f"),
                        points(fidelity.get("mask_ap_change"))]  # fmt: skip
        elif keypoints:
            accuracy = [figure(fidelity.get("pck05"), ".4f"), points(fidelity.get("pck05_change")),
                        figure(fidelity.get("mean_error_px"), ".2f"),
                        figure(fidelity.get("mean_error_change_px"), "+.2f")]  # fmt: skip
        else:
            accuracy = [figure(fidelity.get("miou"), ".4f"), points(fidelity.get("miou_change"))]
        rows.append(
            [
                artifact.path,
                artifact.precision,
                artifact.target,
                percent(fidelity.get("agreement")),
                percent(fidelity.get("worst_frame_agreement")),
                *accuracy,
                float_layer_count(artifact.extra),
                figure(ratio, ".2f") + ("x" if ratio is not None else ""),
                "no" if bundle.passed_over_because(artifact) else "yes",
            ]
        )
    calibration = bundle.manifest.get("calibration", {})
    header = (
        f"fidelity on {calibration.get('eval_frames', '?')} held-out frames ({calibration.get('eval_source', '?')}); "
        f"calibrated on {calibration.get('count', '?')} frames of {calibration.get('source', '?')} "
        f"with {calibration.get('method', '?')}"
    )
    if "fp32_miou" in calibration:
        header += f"; FP32 mIoU {figure(calibration['fp32_miou'], '.4f')}"
    if "fp32_mask_ap" in calibration:
        header += (
            f"; FP32 box AP {figure(calibration.get('fp32_box_ap'), '.4f')}, mask AP "
            f"{figure(calibration['fp32_mask_ap'], '.4f')} against {calibration.get('truth', '?')}"
        )
    if "fp32_pck05" in calibration:
        header += (
            f"; FP32 PCK@0.05 {figure(calibration['fp32_pck05'], '.4f')}, mean error "
            f"{figure(calibration.get('fp32_mean_error_px'), '.2f')} px against {calibration.get('truth', '?')}"
        )
    if instances:
        accuracy, agreement = ["box AP", "mask AP", "mask AP change"], ["detection agreement", "worst frame"]
    elif keypoints:
        accuracy = ["PCK@0.05", "PCK change", "mean error px", "error change px"]
        agreement = ["peak agreement", "worst frame"]
    else:
        accuracy, agreement = ["mIoU", "mIoU change"], ["agreement", "worst frame"]
    table = format_table(
        ["artifact", "precision", "target", *agreement, *accuracy, "float layers", "CPU latency vs FP32", "best"],
        rows,
    )
    bars = sorted({a.extra["accuracy_bar"] for a in bundle.artifacts if "accuracy_bar" in a.extra})
    footer = [f"best: whether `--precision best` may run it, by {'; '.join(bars)}"] if bars else []
    # One line for each INT8 that met its bar but gains nothing: the table's "no" alone reads as an accuracy miss.
    footer += [f"{a.path}: {reason}; `--precision best` passes over it" for a in bundle.artifacts
               if a.extra.get("accepted") is not False and (reason := int8_buys_nothing(a))]  # fmt: skip
    return "\n".join([header, table, *footer])

"""`edgeseg info`: a bundle's manifest, readable."""

from __future__ import annotations

from edgeseg.bundle import Bundle
from edgeseg.tables import format_table, printable


def describe_bundle(bundle: Bundle) -> str:
    manifest = bundle.manifest
    model, contract_in, contract_out = manifest["model"], bundle.input, bundle.output
    batch = "dynamic" if contract_in.batch is None else contract_in.batch
    lines = [
        f"bundle   {bundle.root}  (schema {manifest['schema']}, edgeseg {manifest.get('edgeseg_version', '?')}, "
        f"{manifest.get('created', '')})",
        f"model    {model.get('name')}  [{model.get('family')}, from {model.get('source')}, "
        f"{model.get('parameters', 0):,} parameters]",
        f"input    {contract_in.name}: {contract_in.dtype} {contract_in.layout} {contract_in.color_order}, "
        f"{contract_in.size[0]}x{contract_in.size[1]}{' (dynamic size)' if contract_in.dynamic_size else ''}, batch "
        f"{batch}, "
        f"preprocessing {'fused into the graph' if contract_in.fused_preprocess else 'done by the runtime'}",
        f"output   {contract_out.name}: {contract_out.kind} ({contract_out.dtype}), argmax "
        f"{'fused into the graph' if contract_out.fused_argmax else 'done by the runtime'}",
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
            f"parity   PyTorch vs ONNX Runtime on {parity['frames']} frames: {parity['class_map_agreement']:.4%} "
            f"class-map agreement, max |logit diff| {parity['max_abs_logit_diff']:.2e}",
        ]
    elif parity:
        lines += ["", f"parity   {parity.get('reference')}"]
    return "\n".join(lines)


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def float_layer_count(extra: dict) -> str:
    """How many layers stayed float, and how many of them only because float ran faster there."""
    count, for_speed = len(extra.get("float_layers", [])), len(extra.get("float_for_speed", []))
    return f"{count} ({for_speed} for speed)" if for_speed else str(count)


def fidelity_table(bundle: Bundle) -> str:
    """What each precision variant costs against FP32 on held-out frames."""
    rows = []
    for artifact in bundle.artifacts:
        fidelity = artifact.extra.get("fidelity")
        if fidelity is None:
            continue
        miou = fidelity.get("miou")
        change = fidelity.get("miou_change")
        ratio = artifact.extra.get("cpu_latency_ratio")
        rows.append(
            [
                artifact.path,
                artifact.precision,
                artifact.target,
                percent(fidelity["agreement"]),
                percent(fidelity["worst_frame_agreement"]),
                "-" if miou is None else f"{miou:.4f}",
                "-" if change is None else f"{100 * change:+.2f} pt",
                float_layer_count(artifact.extra),
                "-" if ratio is None else f"{ratio:.2f}x",
            ]
        )
    calibration = bundle.manifest.get("calibration", {})
    header = (
        f"fidelity on {calibration.get('eval_frames', '?')} held-out frames ({calibration.get('eval_source', '?')}); "
        f"calibrated on {calibration.get('count', '?')} frames of {calibration.get('source', '?')} "
        f"with {calibration.get('method', '?')}"
    )
    if "fp32_miou" in calibration:
        header += f"; FP32 mIoU {calibration['fp32_miou']:.4f}"
    table = format_table(
        [
            "artifact",
            "precision",
            "target",
            "agreement",
            "worst frame",
            "mIoU",
            "mIoU change",
            "float layers",
            "CPU latency vs FP32",
        ],
        rows,
    )
    return header + "\n" + table

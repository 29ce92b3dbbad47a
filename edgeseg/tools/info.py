"""`edgeseg info`: a bundle's manifest, readable."""

from __future__ import annotations

from edgeseg.bundle import Bundle, int8_buys_nothing
from edgeseg.tables import format_table, printable
from edgeseg.tools.figures import figure, percent
from edgeseg.tools.scorers import scorer_for


def describe_bundle(bundle: Bundle) -> str:
    manifest, scorer = bundle.manifest, scorer_for(bundle)
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
        scorer.output_line(bundle),
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
    if parity and scorer.parity_key in parity:
        frames = figure(parity.get("frames"), "d")
        lines += ["", f"parity   PyTorch vs ONNX Runtime on {frames} frames: {scorer.parity_figures(parity)}"]
    elif parity:
        lines += ["", f"parity   {parity.get('reference')}"]
    return "\n".join(lines)


def float_layer_count(extra: dict) -> str:
    """How many layers stayed float, and how many of them only because float ran faster there."""
    counted = [extra.get(key) for key in ("float_layers", "float_for_speed")]
    count, for_speed = (len(v) if isinstance(v, list) else 0 for v in counted)
    return f"{count} ({for_speed} for speed)" if for_speed else str(count)


def fidelity_table(bundle: Bundle) -> str:
    """What each precision variant costs against FP32 on held-out frames: pixel agreement and mIoU for a semantic
    bundle, detection agreement and COCO AP for an instance bundle, peak agreement and PCK for a keypoint bundle."""
    scorer = scorer_for(bundle)
    rows = []
    for artifact in bundle.artifacts:
        fidelity = artifact.extra.get("fidelity")
        if not isinstance(fidelity, dict):
            continue
        ratio = artifact.extra.get("cpu_latency_ratio")
        rows.append(
            [
                artifact.path,
                artifact.precision,
                artifact.target,
                percent(fidelity.get("agreement")),
                percent(fidelity.get("worst_frame_agreement")),
                *scorer.fidelity_cells(fidelity),
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
    header += scorer.calibration_figures(calibration)  # what FP32 scored, in the kind's measures
    columns = ["artifact", "precision", "target", *scorer.agreement_columns, *scorer.accuracy_columns]
    table = format_table([*columns, "float layers", "CPU latency vs FP32", "best"], rows)
    bars = sorted({a.extra["accuracy_bar"] for a in bundle.artifacts if "accuracy_bar" in a.extra})
    footer = [f"best: whether `--precision best` may run it, by {'; '.join(bars)}"] if bars else []
    # One line for each INT8 that met its bar but gains nothing: the table's "no" alone reads as an accuracy miss.
    footer += [f"{a.path}: {reason}; `--precision best` passes over it" for a in bundle.artifacts
               if a.extra.get("accepted") is not False and (reason := int8_buys_nothing(a))]  # fmt: skip
    return "\n".join([header, table, *footer])

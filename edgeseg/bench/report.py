"""Benchmark reports: terminal table, Markdown, JSON and PNG plot, each rendered from a BenchReport's JSON form."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgeseg.fileio import atomic_path, write_text_atomic
from edgeseg.tables import format_table

HEADERS = [
    "row",
    "artifact",
    "engine p50",
    "p90",
    "p99",
    "max (ms)",
    "engine FPS",
    "end-to-end FPS",
    "sequential FPS",
    "stage-limited FPS",
    "agreement",
    "mIoU",
]


# The accuracy columns by the report's kind (BenchKind.name): a semantic bundle's rows score class maps (agreement
# with FP32's, mIoU), an instance bundle's detections (agreement, COCO mask AP), a keypoint bundle's peaks
# (agreement, PCK@0.05).
ACCURACY_HEADERS = {
    "semantic": HEADERS[-2:],
    "instances": ["detection agreement", "mask AP"],
    "keypoints": ["peak agreement", "PCK@0.05"],
}


def headers(report: dict[str, Any]) -> list[str]:
    return HEADERS[:-2] + ACCURACY_HEADERS[report.get("kind", "semantic")]


def row_cells(row: dict[str, Any]) -> list[str]:
    if row.get("error"):
        return [row["name"], row["artifact"], f"failed: {row['error']}"] + ["-"] * (len(HEADERS) - 3)
    engine, accuracy = row["engine"], row["accuracy"]
    miou = next((accuracy[key] for key in ("mask_ap", "pck05", "miou") if key in accuracy), None)
    stage_limited = row.get("stage_limited_fps") or 0
    return [
        row["name"],
        row["artifact"],
        f"{engine['p50_ms']:.2f}",
        f"{engine['p90_ms']:.2f}",
        f"{engine['p99_ms']:.2f}",
        f"{engine['max_ms']:.2f}",
        f"{engine['fps']:.1f}",
        f"{row['end_to_end']['fps']:.1f}",
        f"{row['sequential_fps']:.1f}",
        f"{stage_limited:.1f}" if stage_limited else "-",
        f"{100 * accuracy['agreement']:.2f}%",
        "-" if miou is None else f"{miou:.4f}",
    ]


RATIO_LABELS = {
    "pipeline_vs_stage_limited": "pipelined FPS / stage-limited FPS (FP32)",
    "pipeline_vs_sequential": "pipelined FPS / one-thread sequential FPS (FP32)",
    "end_to_end_vs_engine_only": "end-to-end FPS / engine-only FPS (FP32)",
    "end_to_end_vs_engine_in_pipeline": "end-to-end FPS / engine FPS as the pipeline ran it (FP32; at most 1)",
    "int8_vs_fp32_engine_latency": "INT8 / FP32 engine latency",
    "fp16_vs_fp32_engine_latency": "FP16 / FP32 engine latency",
    "edgeseg_vs_baseline_fps": "edgeseg end-to-end FPS / PyTorch-eager baseline FPS",
    "overlay_1080p_vs_addweighted": "1080p overlay / one cv2.addWeighted at 1080p (worst filter)",
}


def ratio_lines(report: dict[str, Any]) -> list[str]:
    """One line per ratio; the headline names the row it compares (the one `--precision best` runs)."""
    figures = report["ratios"]
    lines = []
    for key, value in figures.items():
        if key not in RATIO_LABELS:
            continue
        label = RATIO_LABELS[key]
        if key == "edgeseg_vs_baseline_fps":
            label = f"edgeseg end-to-end FPS ({figures['edgeseg_vs_baseline_row']}, what --precision best runs) / " \
                    "PyTorch-eager baseline FPS"  # fmt: skip
        lines.append(f"{label}: {value:.2f}")
    return lines + [f"note: {note}" for note in report.get("notes", [])]


def environment_line(report: dict[str, Any]) -> str:
    env = report["environment"]
    parts = [f"{env['cpu']} ({env['cores']} cores)", f"onnxruntime {env['onnxruntime']}"]
    if env.get("tensorrt"):
        parts.append(f"TensorRT {env['tensorrt']}")
    if env.get("gpu"):
        parts.append(f"GPU {env['gpu'].get('name')}")
    if env.get("jetson"):
        jetson = env["jetson"]
        parts.append(
            f"{jetson.get('board')} power mode {jetson.get('power_mode')} jetson_clocks "
            f"{'on' if jetson.get('jetson_clocks') else 'off'}"
        )
    return ", ".join(parts)


def heading(report: dict[str, Any]) -> str:
    return (
        f"{report['model']} at {report['input_size'][1]}x{report['input_size'][0]} on {report['source']} "
        f"({report['source_size'][1]}x{report['source_size'][0]}), {report['frames']} frames after "
        f"{report['warmup']} warm-up; "
        f"capture decodes {report['capture_from']}"
    )


def print_terminal(report: dict[str, Any]) -> None:
    """The report on the terminal: rich tables when rich is installed (the bench extra), plain text otherwise."""
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        print(terminal(report))
        return
    import sys

    console = Console(width=None if sys.stdout.isatty() else 220)  # a log or pipe gets the whole table
    console.print(heading(report), highlight=False)
    table = Table(title=environment_line(report), title_justify="left")
    for index, header in enumerate(headers(report)):
        table.add_column(header, justify="left" if index < 2 else "right")
    for row in report["rows"]:
        table.add_row(*row_cells(row))
    console.print(table)
    for warning in report["environment"].get("warnings", []):
        console.print(f"[bold red]WARNING[/]: {warning}")
    if report.get("baseline_note"):
        console.print(f"no baseline row: {report['baseline_note']}")
    overlay = Table(title="overlay cost", title_justify="left")
    for header in ("overlay", "filter", "ms", "addWeighted ms", "ratio"):
        overlay.add_column(header, justify="right" if header != "overlay" else "left")
    for o in report["overlay"]:
        overlay.add_row(
            f"{o['resolution']} ({o['at']})",
            o["filter"],
            f"{o['overlay_ms']:.2f}",
            f"{o['addweighted_ms']:.2f}",
            f"{o['ratio']:.2f}",
        )
    console.print(overlay)
    for line in ratio_lines(report):
        console.print(line, highlight=False)


def terminal(report: dict[str, Any]) -> str:
    lines = [
        heading(report),
        environment_line(report),
        *[f"WARNING: {w}" for w in report["environment"].get("warnings", [])],
        "",
        format_table(headers(report), [row_cells(r) for r in report["rows"]]),
    ]
    if report.get("baseline_note"):
        lines.append(f"no baseline row: {report['baseline_note']}")
    lines += [
        "",
        format_table(
            ["overlay", "filter", "ms", "addWeighted ms", "ratio"],
            [
                [
                    f"{o['resolution']} ({o['at']})",
                    o["filter"],
                    f"{o['overlay_ms']:.2f}",
                    f"{o['addweighted_ms']:.2f}",
                    f"{o['ratio']:.2f}",
                ]
                for o in report["overlay"]
            ],
        ),
    ]
    lines += [""] + ratio_lines(report)
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    def table(headers: list[str], rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)] + [
            "| " + " | ".join(r) + " |" for r in rows
        ]

    lines = [
        f"### edgeseg bench: {report['model']} ({report['input_size'][1]}x{report['input_size'][0]})",
        "",
        f"{environment_line(report)}; source {report['source']}, {report['frames']} frames.",
        "",
    ]
    lines += table(headers(report), [row_cells(r) for r in report["rows"]]) + [""]
    lines += table(
        ["overlay", "filter", "ms", "addWeighted ms", "ratio"],
        [
            [
                f"{o['resolution']} ({o['at']})",
                o["filter"],
                f"{o['overlay_ms']:.2f}",
                f"{o['addweighted_ms']:.2f}",
                f"{o['ratio']:.2f}",
            ]
            for o in report["overlay"]
        ],
    ) + [""]
    lines += [f"- {line}" for line in ratio_lines(report)]
    return "\n".join(lines) + "\n"


def write_json(report: dict[str, Any], path: Path) -> None:
    write_text_atomic(path, json.dumps(report, indent=2) + "\n")


def write_markdown(report: dict[str, Any], path: Path) -> None:
    write_text_atomic(path, markdown(report))


def write_plot(report: dict[str, Any], path: Path) -> None:
    """Latency distribution per row, and accuracy against latency."""
    from edgeseg.errors import require

    require("matplotlib", "bench")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [row for row in report["rows"] if not row.get("error")]  # a failed row has no figures to draw
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    left.boxplot([r["engine_samples_ms"] for r in rows], orientation="horizontal", showfliers=True)
    left.set_yticks(range(1, len(rows) + 1), [r["name"] for r in rows])
    left.set_xscale("log")  # a baseline several times slower stays readable beside the fast rows
    left.set_xlabel("engine-only latency per frame (ms, log scale)")
    left.set_title("latency distribution")
    metric = next((m for m in ("mask_ap", "pck05", "miou") if all(m in r["accuracy"] for r in rows)), "agreement")
    for row in rows:
        accuracy = row["accuracy"][metric]
        right.scatter(row["engine"]["p50_ms"], accuracy, s=60)
        right.annotate(
            row["name"], (row["engine"]["p50_ms"], accuracy), textcoords="offset points", xytext=(5, 5), fontsize=8
        )
    right.set_xlabel("engine p50 latency (ms)")
    names = {"mask_ap": "COCO mask AP", "pck05": "PCK@0.05", "miou": "mIoU"}
    right.set_ylabel(names.get(metric, "agreement with FP32"))
    right.set_title("accuracy against latency")
    figure.suptitle(f"{report['model']} on {report['environment']['cpu']}")
    figure.tight_layout()
    with atomic_path(path) as temp:
        figure.savefig(temp, format="png", dpi=110)
    plt.close(figure)

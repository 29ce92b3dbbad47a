"""`edgeseg demo`: export the demo model for a scene, run it on the synthetic scene, write a video."""

from __future__ import annotations

from pathlib import Path

from edgeseg.bundle import ClassInfo
from edgeseg.data.synthetic import SCENES
from edgeseg.runner import RunOptions, print_summary, run

DEMO_MODELS = {"driving": "deeplabv3plus", "medical": "unet"}
DEMO_SIZE = (240, 320)  # height, width: divisible by both models' strides


def run_demo(scene: str, frames: int = 150, output: Path | None = None, workdir: Path = Path("out")) -> None:
    from edgeseg.export import ExportOptions, export

    classes = [ClassInfo(name, color) for name, color in SCENES[scene].classes]
    model = DEMO_MODELS[scene]
    bundle_dir = workdir / f"demo-{scene}"
    output = output or workdir / f"demo-{scene}.mp4"
    print(f"demo: {model} for the {scene} scene is UNTRAINED (random weights): the masks show the pipeline, not accuracy")
    export(model, bundle_dir, ExportOptions(size=DEMO_SIZE, classes=classes, force=True))
    source = f"synthetic://{scene}?frames={frames}&size=640x480&seed=7"
    print(f"demo: running {bundle_dir} on {source}")
    summary = run(RunOptions(bundle=bundle_dir, inputs=source, outputs=[str(output)]))
    print_summary(summary, [str(output)])

"""`edgeseg demo`: export the demo model for a scene, run it on the synthetic scene, write a video."""

from __future__ import annotations

from pathlib import Path

from edgeseg.runtime.run import RunOptions, print_summary, run


def run_demo(scene: str, frames: int = 150, output: Path | None = None, workdir: Path = Path("out")) -> None:
    from edgeseg.export import ExportOptions, export

    model = f"demo-{scene}"
    bundle_dir = workdir / model
    output = output or workdir / f"{model}.mp4"
    print(f"demo: exporting {model}, the shipped model trained on synthetic {scene} scenes")
    export(model, bundle_dir, ExportOptions(force=True))
    # Seed 5000 is neither a training (0-199) nor a validation (1000-1003) seed: the demo shows unseen video.
    source = f"synthetic://{scene}?frames={frames}&size=640x480&seed=5000"
    print(f"demo: running {bundle_dir} on {source}")
    summary = run(RunOptions(bundle=bundle_dir, inputs=[source], outputs=[str(output)]))
    print_summary(summary, [str(output)])

"""What training a heatmap model needs: the target heatmaps of labelled keypoints, and the loss over every stack.

Targets follow the stacked hourglass paper: per keypoint, a 2-D Gaussian (sigma in heatmap cells) at each
labelled point of every object, the maximum where two overlap, at the heatmap's resolution. A point that
is hidden (COCO visibility 1) is still a target: the scene says where it is, and the network learns to
infer it; a point outside the field (visibility 0) is none. The loss is the squared error of every
stack's heatmaps (intermediate supervision), summed, weighted towards the targets' peaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np
import torch

from edgeseg.bundle import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.data.keypoints import KEYPOINTS_FILE, KeypointSchema, read_keypoints
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.metrics import keypoint_scores
from edgeseg.models.hourglass import decode_peaks
from edgeseg.models.train import jitter, optimizer_step, to_tensor
from edgeseg.models.zoo import build_model, check_size
from edgeseg.progress import Progress
from edgeseg.redact import redact, redact_text


def heatmap_targets(
    keypoints: np.ndarray, size: tuple[int, int], stride: int = 4, sigma: float = 1.5
) -> np.ndarray:
    """(objects, K, 3) keypoints in input pixels -> (K, H / stride, W / stride) float32 target heatmaps."""
    height, width = size[0] // stride, size[1] // stride
    targets = np.zeros((keypoints.shape[1], height, width), np.float32)
    ys = np.arange(height, dtype=np.float32)[:, None]
    xs = np.arange(width, dtype=np.float32)[None, :]
    for points in keypoints:
        for k, (x, y, visibility) in enumerate(points):
            if visibility <= 0:
                continue
            # Input pixel -> heatmap cell: the inverse of decode_peaks' (i + 0.5) * stride - 0.5.
            cx, cy = (x + 0.5) / stride - 0.5, (y + 0.5) / stride - 0.5
            gaussian = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / (2 * sigma * sigma))
            np.maximum(targets[k], gaussian, out=targets[k])
    return targets


def heatmap_loss(
    predictions: list[torch.Tensor] | torch.Tensor, targets: torch.Tensor, foreground_weight: float = 20.0
) -> torch.Tensor:
    """Squared error of each stack's heatmaps against the targets, summed over the stacks. Each cell's error is
    weighted by 1 + foreground_weight * target: a few grasper points cover well under 1% of a heatmap, and
    with plain MSE an all-zero answer is so close to optimal that training sits there for thousands of steps."""
    stacks = predictions if isinstance(predictions, list) else [predictions]
    weight = 1 + foreground_weight * targets
    return sum(torch.mean(weight * (heatmaps - targets) ** 2) for heatmaps in stacks)


# Training recipe of the keypoint models: Adam with a one-cycle schedule, Gaussians of sigma 2 cells (8 input
# pixels at stride 4). Measured on the medical scene, 1200 steps of a width-16 hourglass: sigma 1.5 learned
# slower than 2; the peak-weighted loss is what moved it off the all-zero answer at all.
SIGMA = 2.0
MIN_CONFIDENCE = 0.3  # a decoded peak lower than this is "not found" (eval, run, calibrate's fidelity)
PEAKS = 2  # answers per keypoint in the fused graph: the medical scene shows up to two graspers


@dataclass
class KeypointFrames:
    """Labelled frames for keypoint training: `sample()` gives (image, keypoints (objects, K, 3)) at the training
    size; `validation` is a held-out list of such pairs."""

    schema: KeypointSchema
    sample: Callable[[], tuple[np.ndarray, np.ndarray]]
    validation: list[tuple[np.ndarray, np.ndarray]]


def keypoint_frames(uri: str, options: Any, rng: np.random.Generator) -> KeypointFrames:
    """Keypoint labels from `synthetic://medical?keypoints=1` (fresh frames of the training seeds) or a labelled
    folder with keypoints.json (its last tenth held out)."""
    if uri.startswith("synthetic://"):
        return _scene_frames(uri, options, rng)
    root = Path(uri)
    if not (root / KEYPOINTS_FILE).is_file() or not (root / "images").is_dir():
        raise EdgesegError(f"--data '{redact(uri)}': keypoint training reads synthetic://medical?keypoints=1 or a "
                           f"folder with images/ and {KEYPOINTS_FILE} (edgeseg dataset writes one)")  # fmt: skip
    schema, labelled = read_keypoints(root / KEYPOINTS_FILE, root / "images")
    items = [_resized(root / "images" / name, points, options.size) for name, points in sorted(labelled.items())]
    if len(items) < 2:
        raise EdgesegError(f"'{redact(uri)}' labels {len(items)} image(s); training needs at least 2 (one held out)")
    split = len(items) - max(1, len(items) // 10)
    return KeypointFrames(schema, lambda: items[int(rng.integers(0, split))], items[split:])


def _scene_frames(uri: str, options: Any, rng: np.random.Generator) -> KeypointFrames:
    from edgeseg.data.synthetic import make_scene

    parts = urlsplit(uri)
    name, query = parts.netloc or parts.path.strip("/"), dict(parse_qsl(parts.query))
    height, width = options.size
    scene = make_scene(name, width, height, options.train_seeds[0]) if name == "medical" else None
    if scene is None or set(query) - {"keypoints"}:
        raise EdgesegError(
            f"--data '{redact(uri)}': keypoint training takes 'synthetic://medical?keypoints=1' (the scene with "
            "keypoint labels); set sizes and seeds with --size, --train-seeds, --val-seeds"
        )
    scenes: dict[int, Any] = {}

    def sample() -> tuple[np.ndarray, np.ndarray]:
        seed = int(rng.integers(options.train_seeds[0], options.train_seeds[1] + 1))
        if seed not in scenes:
            if len(scenes) > 64:  # scenes hold textures: keep memory bounded
                scenes.pop(next(iter(scenes)))
            scenes[seed] = make_scene(name, width, height, seed)
        frame = scenes[seed].render(int(rng.integers(0, 3000)))
        return frame.image, frame.keypoints

    validation = []
    for seed in range(options.val_seeds[0], options.val_seeds[1] + 1):
        held_out = make_scene(name, width, height, seed)
        validation += [(f.image, f.keypoints) for f in (held_out.render(i * 37) for i in range(options.val_frames))]
    return KeypointFrames(scene.keypoint_schema, sample, validation)


def _resized(path: Path, points: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise EdgesegError(f"cannot decode the image '{path}'")
    scale = np.array([size[1] / image.shape[1], size[0] / image.shape[0], 1], np.float32)
    return cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR), points * scale


def validate_keypoints(model: Any, frames: list[tuple[np.ndarray, np.ndarray]], names: tuple[str, ...]) -> dict:
    """PCK@0.05 and @0.1 of the frame's diagonal over seen points, per keypoint, and the mean error of found ones."""
    model.eval()
    with torch.no_grad():
        answers = [decode_peaks(model(to_tensor([image], IMAGENET_MEAN, IMAGENET_STD)), peaks=PEAKS)[0].numpy()
                   for image, _ in frames]  # fmt: skip
    model.train()
    return keypoint_scores(answers, [truth for _, truth in frames], names, MIN_CONFIDENCE, frames[0][0].shape[:2])


def train_keypoints(model_name: str, data: str, output: Path, options: Any, command: str = "") -> dict[str, Any]:
    """Train a heatmap model; keep the epoch with the best validation PCK@0.05, saved atomically after each better
    epoch (a stopped run leaves the best so far)."""
    check_size(model_name, options.size)
    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads or torch.get_num_threads())
    rng = np.random.default_rng(options.seed)
    frames = keypoint_frames(data, options, rng)
    model = build_model(model_name, len(frames.schema.names), **options.model_options).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
    total = options.epochs * options.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.lr, total_steps=total)
    best: dict[str, Any] = {"pck05": -1.0}
    history, started = [], time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        bar = Progress(options.steps_per_epoch, f"epoch {epoch}/{options.epochs}", enabled=options.progress)
        recent: list[float] = []
        for _ in range(options.steps_per_epoch):
            # Photometric jitter only: a mirror would swap the jaws' sides, which the labels name.
            batch = [(jitter(image, rng), points) for image, points in (frames.sample() for _ in range(options.batch))]
            targets = np.stack([heatmap_targets(points, options.size, sigma=SIGMA) for _, points in batch])
            predictions = model(to_tensor([image for image, _ in batch], IMAGENET_MEAN, IMAGENET_STD))
            recent.append(optimizer_step(heatmap_loss(predictions, torch.from_numpy(targets)), optimizer, schedule))
            bar.advance(f"loss {np.mean(recent[-20:]):.4f}" if len(recent) % 10 == 0 else "")
        figures = validate_keypoints(model, frames.validation, frames.schema.names)
        history.append({"epoch": epoch, "loss": float(np.mean(recent)),
                        **{k: figures[k] for k in ("pck05", "pck10", "mean_error_px")}})  # fmt: skip
        if options.progress:
            print(f"epoch {epoch}: loss {np.mean(recent):.4f}, validation PCK@0.05 {figures['pck05']:.3f}, "
                  f"PCK@0.1 {figures['pck10']:.3f}, mean error {figures['mean_error_px'] or float('nan'):.2f} px "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
        if figures["pck05"] > best["pck05"]:
            best = {**figures, "epoch": epoch, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            # The weights file gets shared: its data and command show a URI's credentials as ***.
            training = {"model": model_name, "options": options.model_options, "size": list(options.size),
                        "data": redact(data), "train_seeds": list(options.train_seeds),
                        "val_seeds": list(options.val_seeds),
                        "epochs": options.epochs, "steps_per_epoch": options.steps_per_epoch, "batch": options.batch,
                        "lr": options.lr, "seconds": round(time.perf_counter() - started, 1), "best_epoch": epoch,
                        "validation": figures, "history": history, "command": redact_text(command)}  # fmt: skip
            save_keypoint_weights(Path(output), best["state"], frames.schema, training)
    return best


def save_keypoint_weights(output: Path, state: dict[str, Any], schema: KeypointSchema, training: dict) -> None:
    """{state_dict, keypoints: names, skeleton and category, kind, training}, written atomically."""
    checkpoint = {"state_dict": state, "kind": "keypoints", "training": training,
                  "keypoints": {"names": list(schema.names), "skeleton": [list(bone) for bone in schema.skeleton],
                                "category": list(schema.category)}}  # fmt: skip
    with atomic_path(output) as temp:
        torch.save(checkpoint, str(temp))

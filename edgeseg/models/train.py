"""Train a zoo model on labelled scenes on the CPU: `edgeseg train MODEL --data URI -o WEIGHTS`.

Training frames come from `--data`: a synthetic scene (fresh frames every step, from the training
seeds) or a labelled folder. Validation uses held-out synthetic seeds (or the last tenth of a
folder) and picks the best epoch; report final accuracy with `edgeseg eval` on other seeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from edgeseg.bundle import IMAGENET_MEAN as mean
from edgeseg.bundle import IMAGENET_STD as std
from edgeseg.bundle import ClassInfo
from edgeseg.errors import EdgesegError, require
from edgeseg.fileio import atomic_path
from edgeseg.metrics import IGNORE, confusion_matrix, scores
from edgeseg.progress import Progress
from edgeseg.redact import redact, redact_text


@dataclass
class TrainOptions:
    size: tuple[int, int] = (240, 320)  # height, width
    epochs: int = 10
    steps_per_epoch: int = 100
    batch: int = 8
    lr: float = 4e-3
    train_seeds: tuple[int, int] = (0, 199)  # inclusive range of scene seeds to train on
    val_seeds: tuple[int, int] = (1000, 1003)  # held out; eval reports on yet other seeds
    val_frames: int = 8  # per validation seed
    model_options: dict[str, Any] = field(default_factory=dict)
    threads: int | None = None
    seed: int = 0
    progress: bool = True


class SceneSampler:
    """Random labelled frames: a random training seed and a random moment of its video each time."""

    def __init__(self, scene: str, size: tuple[int, int], seeds: tuple[int, int], rng: np.random.Generator):
        from edgeseg.data.synthetic import make_scene

        self.make = lambda seed: make_scene(scene, size[1], size[0], seed)
        self.seeds = seeds
        self.rng = rng
        self.cache: dict[int, Any] = {}
        self.classes = self.make(seeds[0]).classes

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        seed = int(self.rng.integers(self.seeds[0], self.seeds[1] + 1))
        if seed not in self.cache:
            if len(self.cache) > 64:  # scenes hold textures: keep memory bounded
                self.cache.pop(next(iter(self.cache)))
            self.cache[seed] = self.make(seed)
        frame = self.cache[seed].render(int(self.rng.integers(0, 3000)))
        return frame.image, frame.label


class FolderSampler:
    """Random frames from labelled files (a labelled folder, a dataset in its layout), loaded once and resized to the
    training size (labels nearest: never a class between two)."""

    def __init__(
        self,
        pairs: list[tuple[Path, Path]],
        read: Callable[[Path, Path], tuple[np.ndarray, np.ndarray]],
        size: tuple[int, int],
        rng: np.random.Generator,
    ):
        import cv2

        self.items = []
        for image_path, label_path in pairs:
            image, label = read(image_path, label_path)
            self.items.append(
                (
                    cv2.resize(image, size[::-1], interpolation=cv2.INTER_LINEAR),
                    cv2.resize(label, size[::-1], interpolation=cv2.INTER_NEAREST),
                )
            )
        self.rng = rng

    def sample(self) -> tuple[np.ndarray, np.ndarray]:
        return self.items[int(self.rng.integers(0, len(self.items)))]


def augment(image: np.ndarray, label: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Mirror and photometric jitter: the scenes are left-right symmetric, cameras vary in gain."""
    if rng.random() < 0.5:
        image, label = image[:, ::-1], label[:, ::-1]
    return jitter(image, rng), np.ascontiguousarray(label)


def jitter(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Random gain and offset of the whole picture: cameras vary in exposure."""
    gain, bias = rng.uniform(0.75, 1.25), rng.uniform(-20, 20)
    return np.clip(image.astype(np.float32) * gain + bias, 0, 255).astype(np.uint8)


def to_tensor(images: list[np.ndarray], mean: tuple[float, ...], std: tuple[float, ...]) -> Any:
    """uint8 BGR frames -> normalised float RGB NCHW: what the exported graph's fused preprocessing computes."""
    import torch

    batch = np.stack(images)[..., ::-1].astype(np.float32) / 255.0
    batch = (batch - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return torch.from_numpy(np.ascontiguousarray(batch.transpose(0, 3, 1, 2)))


def dice_loss(logits: Any, labels: Any, num_classes: int) -> Any:
    """Soft Dice over classes: keeps small classes (signs, lane marks, highlights) from being ignored."""
    import torch.nn.functional as F

    scored = (labels != IGNORE).unsqueeze(1).float()  # an unscored pixel adds to neither side
    probabilities = logits.softmax(1) * scored
    one_hot = F.one_hot(labels.clamp(max=num_classes - 1), num_classes).permute(0, 3, 1, 2).float() * scored
    intersection = (probabilities * one_hot).sum((0, 2, 3))
    total = probabilities.sum((0, 2, 3)) + one_hot.sum((0, 2, 3))
    present = one_hot.sum((0, 2, 3)) > 0
    return 1 - ((2 * intersection + 1) / (total + 1))[present].mean()


def optimizer_step(loss: Any, optimizer: Any, schedule: Any) -> float:
    """One step of gradient descent and of the learning-rate schedule; the loss as a number."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return float(loss.detach())


def validate(
    model: Any, frames: list[tuple[np.ndarray, np.ndarray]], num_classes: int, mean: Any, std: Any
) -> dict[str, Any]:
    import torch

    model.eval()
    confusion = np.zeros((num_classes, num_classes), np.int64)
    with torch.no_grad():
        for start in range(0, len(frames), 8):
            chunk = frames[start : start + 8]
            predicted = model(to_tensor([f[0] for f in chunk], mean, std)).argmax(1).numpy()
            for prediction, (_, label) in zip(predicted, chunk):
                confusion += confusion_matrix(prediction, label, num_classes)
    model.train()
    return scores(confusion)


def parse_data(
    uri: str, options: TrainOptions, rng: np.random.Generator
) -> tuple[Any, list[tuple[np.ndarray, np.ndarray]], list[ClassInfo] | None]:
    """(training sampler, validation frames, classes known from the data)."""
    from edgeseg.data.synthetic import SCENES, make_scene

    height, width = options.size
    if uri.startswith("synthetic://"):
        parts = urlsplit(uri)
        name = parts.netloc or parts.path.strip("/")
        if name not in SCENES:
            raise EdgesegError(f"unknown synthetic scene '{name}'; choose one of: {', '.join(SCENES)}")
        if parse_qsl(parts.query):
            raise EdgesegError(
                f"train takes a bare scene URI ('synthetic://{name}'); set sizes and seeds with --size, "
                "--train-seeds, --val-seeds"
            )
        sampler = SceneSampler(name, options.size, options.train_seeds, rng)
        val = []
        for seed in range(options.val_seeds[0], options.val_seeds[1] + 1):
            scene = make_scene(name, width, height, seed)
            val += [(f.image, f.label) for f in (scene.render(i * 97) for i in range(options.val_frames))]
        return sampler, val, [ClassInfo(n, c) for n, c in sampler.classes]
    pairs, read, classes = labelled_files(uri)
    count = len(pairs)
    if count < 2:
        raise EdgesegError(
            f"'{redact(uri)}' has {count} pair(s) of image and label; training needs at least 2 (one held out)"
        )
    split = max(1, count // 10)
    val_sampler = FolderSampler(pairs[count - split :], read, options.size, rng)
    return FolderSampler(pairs[: count - split], read, options.size, rng), val_sampler.items, classes


def labelled_files(
    uri: str,
) -> tuple[list[tuple[Path, Path]], Callable[[Path, Path], tuple[np.ndarray, np.ndarray]], list[ClassInfo] | None]:
    """(image, label) paths, how to read a pair, and the class set where the layout has a standard one."""
    import cv2

    from edgeseg.data.folder import is_labelled_folder, labelled_pairs, read_pair
    from edgeseg.data.layouts import dataset_location, is_dataset_uri, recognise

    if is_dataset_uri(uri):
        layout, root, split = dataset_location(uri)
    elif Path(uri).is_dir() and is_labelled_folder(Path(uri)):
        return labelled_pairs(Path(uri)), read_pair, None
    elif Path(uri).is_dir() and (layout := recognise(Path(uri))) is not None:
        root, split = Path(uri), layout.default_split
    else:
        raise EdgesegError(
            f"--data '{redact(uri)}' is neither synthetic://SCENE, a folder with images/ and labels/, nor a dataset "
            "(cityscapes, camvid, voc, ade20k, kvasir)"
        )

    def read(image_path: Path, label_path: Path) -> tuple[np.ndarray, np.ndarray]:
        image = cv2.imread(str(image_path), cv2.IMREAD_COLOR)
        if image is None:
            raise EdgesegError(f"cannot decode the image '{image_path}'")
        return image, layout.decode(root, label_path)

    return layout.find(root, split), read, [ClassInfo(name, colour) for name, colour in layout.classes(root)]


@dataclass
class TrainSummary:
    """What a training run did and reached; `to_dict()` is stored in the weights file as `training`."""

    model: str
    options: dict[str, Any]
    size: list[int]
    data: str
    train_seeds: list[int]
    val_seeds: list[int]
    epochs: int
    steps_per_epoch: int
    batch: int
    seconds: float
    best_epoch: int
    val_miou: float
    val_per_class_iou: list[float | None]
    history: list[dict[str, Any]]
    command: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def train(
    model_name: str,
    data: str,
    output: Path,
    options: TrainOptions,
    classes: list[ClassInfo] | None = None,
    command: str = "",
) -> TrainSummary:
    """Train, keep the epoch with the best validation mIoU, save {state_dict, classes, ...} atomically."""
    torch = require("torch", "export")
    from edgeseg.models import build_model, check_size

    check_size(model_name, options.size)
    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads or torch.get_num_threads())
    rng = np.random.default_rng(options.seed)
    sampler, val_frames, data_classes = parse_data(data, options, rng)
    classes = classes or data_classes
    if classes is None:
        raise EdgesegError("a labelled folder does not name its classes: pass --classes N or a names file")
    model = build_model(model_name, len(classes), **options.model_options).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=1e-4)
    total_steps = options.epochs * options.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=options.lr, total_steps=total_steps, pct_start=0.15
    )
    best: dict[str, Any] = {"miou": -1.0}
    history = []
    started = time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        bar = Progress(options.steps_per_epoch, f"epoch {epoch}/{options.epochs}", enabled=options.progress)
        losses = []
        for _ in range(options.steps_per_epoch):
            samples = [augment(*sampler.sample(), rng) for _ in range(options.batch)]
            inputs = to_tensor([s[0] for s in samples], mean, std)
            labels = torch.from_numpy(np.stack([s[1] for s in samples]).astype(np.int64))
            logits = model(inputs)
            loss = torch.nn.functional.cross_entropy(logits, labels, ignore_index=IGNORE) + dice_loss(
                logits, labels, len(classes)
            )
            losses.append(optimizer_step(loss, optimizer, schedule))
            bar.advance(f"loss {np.mean(losses[-20:]):.3f}" if len(losses) % 10 == 0 else "")
        result = validate(model, val_frames, len(classes), mean, std)
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), "val_miou": result["miou"]})
        if options.progress:
            print(
                f"epoch {epoch}: loss {np.mean(losses):.4f}, validation mIoU {result['miou']:.4f} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
        if result["miou"] > best["miou"]:
            best = {
                "miou": result["miou"],
                "per_class_iou": result["per_class_iou"],
                "epoch": epoch,
                "state": {k: v.detach().clone() for k, v in model.state_dict().items()},
            }
    summary = TrainSummary(
        model=model_name,
        options=options.model_options,
        size=list(options.size),
        data=redact(data),  # stored in the weights file, which gets shared: no password in it
        train_seeds=list(options.train_seeds),
        val_seeds=list(options.val_seeds),
        epochs=options.epochs,
        steps_per_epoch=options.steps_per_epoch,
        batch=options.batch,
        seconds=round(time.perf_counter() - started, 1),
        best_epoch=best["epoch"],
        val_miou=best["miou"],
        val_per_class_iou=best["per_class_iou"],
        history=history,
        command=redact_text(command),
    )
    classes_json = [{"name": c.name, "color": list(c.color)} for c in classes]
    checkpoint = {"state_dict": best["state"], "classes": classes_json, "training": summary.to_dict()}
    with atomic_path(Path(output)) as temp:
        torch.save(checkpoint, str(temp))
    return summary

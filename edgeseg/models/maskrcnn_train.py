"""Mask R-CNN's training targets and losses (He et al. 2017, after Faster R-CNN), in torch.

RPN: anchors with IoU >= 0.7 to an object (and each object's best anchor) are positive, < 0.3 negative; 256
sampled per image, half positive at most; binary cross-entropy plus smooth L1 on the positives' deltas.
Heads: the RPN's proposals (no gradient) plus the true boxes, IoU >= 0.5 foreground; 128 sampled per image,
a quarter foreground at most; cross-entropy over classes and background, smooth L1 on the foreground's
deltas, and per-pixel binary cross-entropy of the 28x28 mask of the true class against the object's mask
RoIAligned into the same box.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from edgeseg.bundle import IMAGENET_MEAN, IMAGENET_STD
from edgeseg.models.detection_ops import box_iou, encode, roi_align
from edgeseg.models.maskrcnn import HEAD_DELTA_SCALE, MaskRCNN
from edgeseg.models.train import optimizer_step, to_tensor


@dataclass
class Target:
    boxes: torch.Tensor  # (G, 4) x1 y1 x2 y2, pixels
    classes: torch.Tensor  # (G,) 1..K
    masks: torch.Tensor  # (G, H, W) float 0/1


def target_from(instances: np.ndarray, label: np.ndarray, class_of: dict[int, int], min_area: int = 4) -> Target:
    """Objects from an instance plane; `class_of` maps the label plane's class to the model's 1..K."""
    boxes, classes, masks = [], [], []
    for number in np.unique(instances):
        if number == 0:
            continue
        mask = instances == number
        if mask.sum() < min_area:  # a few far pixels: nothing a 28x28 mask or a box can learn from
            continue
        rows, cols = np.nonzero(mask)
        boxes.append([cols.min(), rows.min(), cols.max() + 1, rows.max() + 1])
        classes.append(class_of[int(np.bincount(label[mask]).argmax())])
        masks.append(mask)
    height, width = instances.shape
    return Target(
        torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        torch.tensor(classes, dtype=torch.long),
        torch.from_numpy(np.stack(masks).astype(np.float32)) if masks else torch.zeros((0, height, width)),
    )


def sample(labels: torch.Tensor, count: int, positive_fraction: float, generator: torch.Generator) -> torch.Tensor:
    """Indices of a sample of `count` labels (1 positive, 0 negative, -1 ignored), positives capped."""
    positive = (labels == 1).nonzero().flatten()
    negative = (labels == 0).nonzero().flatten()
    positive = positive[torch.randperm(positive.numel(), generator=generator)[: int(count * positive_fraction)]]
    negative = negative[torch.randperm(negative.numel(), generator=generator)[: count - positive.numel()]]
    return torch.cat([positive, negative])


def rpn_loss(model: MaskRCNN, pyramid: list[torch.Tensor], targets: list[Target], generator: torch.Generator):
    anchors = torch.cat(model.anchors)
    outputs = [model.rpn(feature) for feature in pyramid]
    logits = torch.cat([o[0] for o in outputs], 1)
    deltas = torch.cat([o[1] for o in outputs], 1)
    objectness, regression = [], []
    for image, target in enumerate(targets):
        labels = torch.zeros(anchors.shape[0])
        if target.boxes.numel():
            overlaps = box_iou(anchors, target.boxes)  # (A, G)
            best, matched = overlaps.max(1)
            labels[best >= 0.7] = 1
            labels[(best >= 0.3) & (best < 0.7)] = -1
            labels[overlaps.argmax(0)] = 1  # every object gets its best anchor, however small it is
        chosen = sample(labels, 256, 0.5, generator)
        objectness.append(F.binary_cross_entropy_with_logits(logits[image, chosen], labels[chosen]))
        positive = chosen[labels[chosen] == 1]
        if positive.numel():
            wanted = encode(target.boxes[matched[positive]], anchors[positive])
            regression.append(F.smooth_l1_loss(deltas[image, positive], wanted, beta=1 / 9, reduction="sum") / 256)
    return torch.stack(objectness).mean(), torch.stack(regression).sum() / len(targets) if regression else 0.0


def head_losses(model: MaskRCNN, pyramid: list[torch.Tensor], targets: list[Target], generator: torch.Generator):
    rois, batch_index, classes, wanted, masks_wanted = [], [], [], [], []
    for image, target in enumerate(targets):
        with torch.no_grad():
            proposals, scores = model.propose([p.detach() for p in pyramid], image)
        boxes = torch.cat([proposals[scores > 0], target.boxes])
        labels = torch.zeros(boxes.shape[0])
        matched = torch.zeros(boxes.shape[0], dtype=torch.long)
        if target.boxes.numel():
            best, matched = box_iou(boxes, target.boxes).max(1)
            labels[best >= 0.5] = 1
        chosen = sample(labels, 128, 0.25, generator)
        foreground = labels[chosen] == 1
        rois.append(boxes[chosen])
        batch_index.append(torch.full((chosen.numel(),), image, dtype=torch.long))
        classes.append(torch.where(foreground, target.classes[matched[chosen]] if target.boxes.numel() else 0, 0))
        if target.boxes.numel():
            gt = target.boxes[matched[chosen]]
            wanted.append(encode(gt, boxes[chosen]) / torch.tensor(HEAD_DELTA_SCALE))
            masks_wanted.append(
                roi_align(target.masks[:, None], boxes[chosen], matched[chosen], 28, 1.0, 2)[:, 0]
                if foreground.any()
                else torch.zeros((chosen.numel(), 28, 28))
            )
        else:
            wanted.append(torch.zeros((chosen.numel(), 4)))
            masks_wanted.append(torch.zeros((chosen.numel(), 28, 28)))
    rois, batch_index, classes = torch.cat(rois), torch.cat(batch_index), torch.cat(classes)
    hidden = model.box_head(model.pool(pyramid, rois, batch_index, 7))
    classification = F.cross_entropy(model.classifier(hidden), classes)
    foreground = classes > 0
    if not foreground.any():
        return classification, hidden.sum() * 0, hidden.sum() * 0
    deltas = model.box_deltas(hidden)[foreground]
    box = F.smooth_l1_loss(deltas, torch.cat(wanted)[foreground], beta=1.0, reduction="sum") / classes.numel()
    mask_logits = model.mask_head(model.pool(pyramid, rois[foreground], batch_index[foreground], 14))
    picked = mask_logits[torch.arange(mask_logits.shape[0]), classes[foreground] - 1]
    mask = F.binary_cross_entropy_with_logits(picked, (torch.cat(masks_wanted)[foreground] >= 0.5).float())
    return classification, box, mask


def losses(model: MaskRCNN, images: torch.Tensor, targets: list[Target], generator: torch.Generator) -> dict:
    pyramid = model.features(images)
    objectness, rpn_box = rpn_loss(model, pyramid, targets, generator)
    classification, box, mask = head_losses(model, pyramid, targets, generator)
    return {"objectness": objectness, "rpn_box": rpn_box, "class": classification, "box": box, "mask": mask}


def detections_of(outputs: tuple, categories: list[int], height: int, width: int) -> list:
    """A model's fixed-size answer as (box, score, category id, full-frame mask) per real detection."""
    from edgeseg.data.coco import paste_mask

    boxes, scores, classes, masks, count = (o.detach().numpy() if hasattr(o, "detach") else o for o in outputs)
    return [
        (boxes[i], float(scores[i]), categories[int(classes[i])], paste_mask(boxes[i], masks[i], height, width))
        for i in range(int(count))
    ]


def validate_instances(model: MaskRCNN, frames: list, categories: dict[int, str], mean, std) -> dict:
    from edgeseg.data.coco import evaluate_coco, instance_classes

    model.eval()
    truths, found = [], []
    with torch.no_grad():
        for frame in frames:
            height, width = frame.label.shape
            outputs = model(to_tensor([frame.image], mean, std))
            found.append(detections_of(outputs, list(categories), height, width))
            truths.append((frame.instances, instance_classes(frame.instances, frame.label)))
    model.train()
    return evaluate_coco(truths, found, categories)


def train_instances(model_name: str, data: str, output, options, command: str = ""):
    """Train Mask R-CNN on the driving scene's instances; keep the epoch with the best validation mask AP50."""
    import time

    from edgeseg.data.synthetic import DRIVING_CLASSES, INSTANCE_CLASSES, make_scene
    from edgeseg.errors import EdgesegError
    from edgeseg.models.zoo import build_model
    from edgeseg.progress import Progress

    if not data.startswith("synthetic://driving"):
        raise EdgesegError(f"{model_name} trains on instance labels: use --data 'synthetic://driving?instances=1'")
    mean, std = IMAGENET_MEAN, IMAGENET_STD  # what export fuses into the graph by default
    height, width = options.size
    torch.manual_seed(options.seed)
    torch.set_num_threads(options.threads or torch.get_num_threads())
    rng, generator = np.random.default_rng(options.seed), torch.Generator().manual_seed(options.seed)
    categories = {index: DRIVING_CLASSES[index][0] for index in INSTANCE_CLASSES}
    class_of = {category: position + 1 for position, category in enumerate(categories)}
    model = build_model(model_name, len(categories), image_size=(height, width), **options.model_options).train()
    scenes: dict[int, object] = {}

    def render(seed: int, index: int):
        if seed not in scenes:
            if len(scenes) > 64:
                scenes.pop(next(iter(scenes)))
            scenes[seed] = make_scene("driving", width, height, seed)
        return scenes[seed].render(index)

    val_frames = [render(seed, index * 37) for seed in range(options.val_seeds[0], options.val_seeds[1] + 1)
                  for index in range(options.val_frames)]  # fmt: skip
    optimizer = torch.optim.AdamW(model.parameters(), lr=options.lr, weight_decay=1e-4)
    total = options.epochs * options.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=options.lr, total_steps=total, pct_start=0.1)
    best: dict = {"mask_ap50": -1.0}
    history, started = [], time.perf_counter()
    for epoch in range(1, options.epochs + 1):
        bar = Progress(options.steps_per_epoch, f"epoch {epoch}/{options.epochs}", enabled=options.progress)
        recent: list[float] = []
        for _ in range(options.steps_per_epoch):
            frames = [render(int(rng.integers(options.train_seeds[0], options.train_seeds[1] + 1)),
                             int(rng.integers(0, 3000))) for _ in range(options.batch)]  # fmt: skip
            flips = rng.random(len(frames)) < 0.5
            images = [f.image[:, ::-1] if flip else f.image for f, flip in zip(frames, flips)]
            targets = [target_from(f.instances[:, ::-1] if flip else f.instances, f.label[:, ::-1] if flip else
                                   f.label, class_of) for f, flip in zip(frames, flips)]  # fmt: skip
            loss = sum(losses(model, to_tensor(images, mean, std), targets, generator).values())
            recent.append(optimizer_step(loss, optimizer, schedule))
            bar.advance(f"loss {np.mean(recent[-20:]):.3f}" if len(recent) % 10 == 0 else "")
        figures = validate_instances(model, val_frames, categories, mean, std)
        history.append({"epoch": epoch, "loss": float(np.mean(recent)), **{k: figures[k] for k in
                        ("box_ap", "box_ap50", "mask_ap", "mask_ap50")}})  # fmt: skip
        if options.progress:
            print(f"epoch {epoch}: loss {np.mean(recent):.4f}, validation mask AP50 {figures['mask_ap50']:.3f}, box "
                  f"AP50 {figures['box_ap50']:.3f} ({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
        if figures["mask_ap50"] > best["mask_ap50"]:
            best = {**figures, "epoch": epoch, "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
            save_instances(output, best, categories, history, model_name, data, options, started, command)
    return best


def save_instances(output, best: dict, categories: dict[int, str], history, model_name, data, options, started,
                   command) -> None:  # fmt: skip
    """The checkpoint so far (written after every better epoch, atomically, so a stopped run leaves the best)."""
    import time
    from pathlib import Path

    from edgeseg.data.synthetic import DRIVING_CLASSES
    from edgeseg.fileio import atomic_path

    training = {"model": model_name, "options": options.model_options, "size": list(options.size), "data": data,
                "train_seeds": list(options.train_seeds), "val_seeds": list(options.val_seeds),
                "epochs": options.epochs, "steps_per_epoch": options.steps_per_epoch, "batch": options.batch,
                "seconds": round(time.perf_counter() - started, 1), "best_epoch": best["epoch"],
                "validation": {k: v for k, v in best.items() if k not in ("state", "epoch")}, "history": history,
                "command": command}  # fmt: skip
    classes = [{"name": name, "color": list(DRIVING_CLASSES[index][1]), "category_id": index}
               for index, name in categories.items()]  # fmt: skip
    # Float weights stored as float16: 7.1 MB -> 3.6 MB, under the 5 MB a packaged demo may take; load_state_dict
    # copies them back into the float32 model.
    state = {k: v.half() if v.is_floating_point() else v for k, v in best["state"].items()}
    checkpoint = {"state_dict": state, "classes": classes, "kind": "instances", "training": training}
    with atomic_path(Path(output)) as temp:
        torch.save(checkpoint, str(temp))

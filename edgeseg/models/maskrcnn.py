"""A compact Mask R-CNN (He et al. 2017): the zoo's backbone, an FPN, an RPN with anchors, RoIAlign, a box head
and an FCN mask head with 28x28 masks per instance.

Sized for the accelerator: the input size is fixed at construction (anchors are constants of the graph) and the
outputs are fixed in size too, the top `max_detections` as boxes [N, 4] (x1 y1 x2 y2, input pixels), scores [N]
(0 pads), classes [N] (int32, 0-based object classes), masks [N, 28, 28] (probabilities in each box), and the
count. Everything between input and output (proposals, NMS, box decoding, mask head) is in the exported graph:
TopK with constant K, NonMaxSuppression and RoiAlign, as TensorRT 8.5 and later parse them.

Deliberate simplifications for a small model: class-agnostic box regression (one box per RoI, the class
scored apart), three FPN levels (strides 4, 8, 16), and two anchor sizes per level.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgeseg.models.common import Backbone
from edgeseg.models.detection_ops import class_nms, decode, roi_align

STRIDES = (4, 8, 16)
ANCHOR_SIZES = ((8, 16), (24, 40), (64, 100))
ASPECTS = (0.5, 1.0, 2.5)  # height / width: signs are round, cars wide, people tall
HEAD_DELTA_SCALE = (0.1, 0.1, 0.2, 0.2)  # the box head's deltas are this much smaller than the RPN's


def make_anchors(height: int, width: int) -> list[torch.Tensor]:
    """Per level, (H*W*A, 4) anchors in input pixels, centred on each feature cell."""
    levels = []
    for stride, sizes in zip(STRIDES, ANCHOR_SIZES):
        shapes = [(size / math.sqrt(aspect), size * math.sqrt(aspect)) for size in sizes for aspect in ASPECTS]
        half = torch.tensor([[-w / 2, -h / 2, w / 2, h / 2] for w, h in shapes])  # (A, 4)
        ys = (torch.arange(height // stride) + 0.5) * stride
        xs = (torch.arange(width // stride) + 0.5) * stride
        cy, cx = torch.meshgrid(ys, xs, indexing="ij")
        centres = torch.stack([cx, cy, cx, cy], -1).reshape(-1, 1, 4)
        levels.append((centres + half[None]).reshape(-1, 4))
    return levels


def level_of(boxes: torch.Tensor) -> torch.Tensor:
    """FPN's assignment (Lin et al. 2017, eq. 1) shifted to this model's scale: small boxes read stride 4."""
    side = ((boxes[:, 2] - boxes[:, 0]).clamp(min=1) * (boxes[:, 3] - boxes[:, 1]).clamp(min=1)).sqrt()
    return torch.floor(torch.log2(side / 24.0 + 1e-6) + 1).clamp(0, len(STRIDES) - 1)


class FPN(nn.Module):
    def __init__(self, channels: list[int], width: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        self.smooth = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        merged = [self.lateral[-1](features[-1])]
        for lateral, feature in zip(self.lateral[-2::-1], features[-2::-1]):
            merged.insert(0, lateral(feature) + F.interpolate(merged[0], scale_factor=2.0, mode="nearest"))
        return [smooth(m) for smooth, m in zip(self.smooth, merged)]


class RPNHead(nn.Module):
    def __init__(self, width: int, anchors: int):
        super().__init__()
        self.conv = nn.Conv2d(width, width, 3, padding=1)
        self.objectness = nn.Conv2d(width, anchors, 1)
        self.deltas = nn.Conv2d(width, anchors * 4, 1)

    def forward(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, H*W*A) logits and (B, H*W*A, 4) deltas, in the anchors' order."""
        hidden = F.relu(self.conv(feature))
        batch = feature.shape[0]
        logits = self.objectness(hidden).permute(0, 2, 3, 1).reshape(batch, -1)
        deltas = self.deltas(hidden).permute(0, 2, 3, 1).reshape(batch, -1, 4)
        return logits, deltas


class MaskRCNN(nn.Module):
    kind = "instances"

    def __init__(
        self,
        num_classes: int,
        width: int = 16,
        fpn_width: int = 64,
        image_size: tuple[int, int] = (240, 320),
        max_detections: int = 50,
        proposals: int = 100,
        pre_nms: int = 300,
    ):
        super().__init__()
        self.num_classes, self.image_size = num_classes, tuple(image_size)
        self.max_detections, self.proposals, self.pre_nms = max_detections, proposals, pre_nms
        self.backbone = Backbone(width)
        self.fpn = FPN(self.backbone.channels[1:4], fpn_width)
        self.rpn = RPNHead(fpn_width, len(ANCHOR_SIZES[0]) * len(ASPECTS))
        self.box_head = nn.Sequential(
            nn.Flatten(), nn.Linear(fpn_width * 49, 256), nn.ReLU(inplace=True), nn.Linear(256, 256),
            nn.ReLU(inplace=True),
        )  # fmt: skip
        self.classifier = nn.Linear(256, num_classes + 1)  # 0: background
        self.box_deltas = nn.Linear(256, 4)
        layers: list[nn.Module] = []
        for _ in range(4):
            layers += [nn.Conv2d(fpn_width, fpn_width, 3, padding=1), nn.ReLU(inplace=True)]
        layers += [nn.ConvTranspose2d(fpn_width, fpn_width, 2, stride=2), nn.ReLU(inplace=True)]
        self.mask_head = nn.Sequential(*layers, nn.Conv2d(fpn_width, num_classes, 1))
        for level, anchors in enumerate(make_anchors(*self.image_size)):
            self.register_buffer(f"anchors{level}", anchors, persistent=False)

    @property
    def anchors(self) -> list[torch.Tensor]:
        return [getattr(self, f"anchors{level}") for level in range(len(STRIDES))]

    def features(self, images: torch.Tensor) -> list[torch.Tensor]:
        return self.fpn(self.backbone(images)[1:4])

    def pool(self, pyramid: list[torch.Tensor], boxes: torch.Tensor, batch_index: torch.Tensor, size: int) -> Any:
        """Multi-level RoIAlign: each box read from its FPN level (computed on all, chosen by a one-hot weight,
        which exports without data-dependent control flow)."""
        levels = level_of(boxes)
        pooled = 0
        for level, (feature, stride) in enumerate(zip(pyramid, STRIDES)):
            weight = (levels == level).to(feature.dtype)[:, None, None, None]
            pooled = pooled + weight * roi_align(feature, boxes, batch_index, size, 1.0 / stride)
        return pooled

    def propose(self, pyramid: list[torch.Tensor], image: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The image's `proposals` best RPN boxes after NMS, padded with score 0 to a fixed count."""
        height, width = self.image_size
        boxes, scores = [], []
        for feature, anchors in zip(pyramid, self.anchors):
            logits, deltas = self.rpn(feature[image : image + 1])
            best, order = logits[0].topk(min(self.pre_nms, logits.shape[1]))
            boxes.append(decode(deltas[0][order], anchors[order], height, width))
            scores.append(torch.sigmoid(best))
        boxes, scores = torch.cat(boxes), torch.cat(scores)
        kept = class_nms(boxes, scores[None], 0.7, self.proposals)[:, 2]
        return pad_top(boxes[kept], scores[kept], self.proposals)

    def detect(self, pyramid: list[torch.Tensor], proposals: torch.Tensor, valid: torch.Tensor) -> Any:
        """Boxes, scores and 0-based classes of the `max_detections` best detections (per-class NMS)."""
        height, width = self.image_size
        batch_index = torch.zeros(proposals.shape[0], dtype=torch.long)
        hidden = self.box_head(self.pool(pyramid, proposals, batch_index, 7))
        probabilities = torch.softmax(self.classifier(hidden), dim=1)[:, 1:] * valid[:, None]
        scale = torch.tensor(HEAD_DELTA_SCALE)
        boxes = decode(self.box_deltas(hidden) * scale, proposals, height, width)
        selected = class_nms(boxes, probabilities.t(), 0.5, self.max_detections)
        classes, chosen = selected[:, 1], selected[:, 2]
        scores = probabilities.reshape(-1)[chosen * self.num_classes + classes]
        scores = scores * (scores > 0.05)  # below 5% is no detection (score 0 pads the fixed-size answer)
        (boxes, classes), scores = pad_top(boxes[chosen], scores, self.max_detections, classes)
        return boxes, classes, scores

    def masks(self, pyramid: list[torch.Tensor], boxes: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        batch_index = torch.zeros(boxes.shape[0], dtype=torch.long)
        logits = self.mask_head(self.pool(pyramid, boxes, batch_index, 14))  # (N, K, 28, 28)
        one_hot = F.one_hot(classes.long(), self.num_classes).to(logits.dtype)[:, :, None, None]
        return torch.sigmoid((logits * one_hot).sum(1))

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Inference on one image (B=1): boxes, scores, classes, masks and the count of real detections."""
        pyramid = self.features(images)
        proposals, proposal_scores = self.propose(pyramid, 0)
        boxes, classes, scores = self.detect(pyramid, proposals, (proposal_scores > 0).to(images.dtype))
        masks = self.masks(pyramid, boxes, classes)
        count = (scores > 0).to(scores.dtype).sum().to(torch.int32)  # summed in float: 8.5 has no INT64 ReduceSum
        return boxes, scores, classes.to(torch.int32), masks, count


def pad_top(boxes: torch.Tensor, scores: torch.Tensor, count: int, classes: torch.Tensor | None = None) -> Any:
    """The `count` best (box, score[, class]) by score, with score-0 rows appended first so there are enough:
    a fixed-size answer however many survived NMS (TopK's K is a constant, as TensorRT 8.5 needs)."""
    padded_boxes = torch.cat([boxes, boxes.new_zeros((count, 4))])
    padded_scores = torch.cat([scores, scores.new_zeros(count)])
    best, order = padded_scores.topk(count)
    if classes is None:
        return padded_boxes[order], best
    padded_classes = torch.cat([classes, classes.new_zeros(count)])
    return (padded_boxes[order], padded_classes[order]), best

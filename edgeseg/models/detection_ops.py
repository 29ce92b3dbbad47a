"""RoIAlign, non-maximum suppression and box coding in torch, exported as the ONNX operators TensorRT parses.

Training and eager inference run the torch code below. Under `torch.onnx.export` the same calls go through
`torch.autograd.Function`s whose `symbolic` emits ONNX `RoiAlign` (opset 16+, half_pixel: the Mask R-CNN
paper's corrected alignment, no rounding of the region) and `NonMaxSuppression`, so the whole detector is
one graph. The torch RoIAlign follows ONNX's definition: `sampling_ratio` x `sampling_ratio` bilinear samples
per bin, averaged, a region's corners shifted by half a pixel.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

BOX_CLIP = math.log(1000.0 / 16)  # largest log-scale change a delta may ask for (as Detectron's)


def roi_align_torch(
    features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, size: int, scale: float, sampling: int
) -> torch.Tensor:
    """(R, C, size, size) from features (N, C, H, W) and rois (R, 4) x1 y1 x2 y2 in input pixels."""
    channels, height, width = features.shape[1:]
    pooled = features.new_zeros((rois.shape[0], channels, size, size))
    steps = (torch.arange(size * sampling, device=rois.device, dtype=rois.dtype) + 0.5) / sampling  # bin units
    for image in range(features.shape[0]):
        chosen = (batch_index == image).nonzero().flatten()
        if chosen.numel() == 0:
            continue
        boxes = rois[chosen] * scale - 0.5  # half_pixel: a pixel's centre is at its index
        x0, y0, x1, y1 = boxes.unbind(1)
        xs = x0[:, None] + steps[None] * ((x1 - x0) / size)[:, None]  # (r, size*sampling)
        ys = y0[:, None] + steps[None] * ((y1 - y0) / size)[:, None]
        grid_x = (2 * xs + 1) / width - 1  # grid_sample's align_corners=False normalisation
        grid_y = (2 * ys + 1) / height - 1
        count = chosen.numel()
        grid = torch.stack(
            [grid_x[:, None, :].expand(-1, size * sampling, -1), grid_y[:, :, None].expand(-1, -1, size * sampling)],
            dim=-1,
        ).reshape(1, count * size * sampling, size * sampling, 2)
        sampled = F.grid_sample(features[image : image + 1], grid, align_corners=False, padding_mode="border")
        sampled = sampled.reshape(channels, count, size, sampling, size, sampling).mean(dim=(3, 5))
        pooled[chosen] = sampled.permute(1, 0, 2, 3)
    return pooled


class _RoiAlign(torch.autograd.Function):
    @staticmethod
    def forward(ctx, features, rois, batch_index, size, scale, sampling):  # noqa: ANN001 - torch's signature
        return roi_align_torch(features, rois, batch_index, size, scale, sampling)

    @staticmethod
    def symbolic(g, features, rois, batch_index, size, scale, sampling):  # noqa: ANN001
        return g.op(
            "RoiAlign",
            features,
            rois,
            batch_index,
            coordinate_transformation_mode_s="half_pixel",
            mode_s="avg",
            output_height_i=size,
            output_width_i=size,
            sampling_ratio_i=sampling,
            spatial_scale_f=scale,
        )


def roi_align(
    features: torch.Tensor, rois: torch.Tensor, batch_index: torch.Tensor, size: int, scale: float, sampling: int = 2
) -> torch.Tensor:
    if torch.onnx.is_in_onnx_export():
        return _RoiAlign.apply(features, rois, batch_index, size, scale, sampling)
    return roi_align_torch(features, rois, batch_index, size, scale, sampling)


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    top_left = torch.maximum(a[:, None, :2], b[None, :, :2])
    bottom_right = torch.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = (bottom_right - top_left).clamp(min=0).prod(-1)
    return inter / (area_a[:, None] + area_b[None] - inter).clamp(min=1e-6)


def nms_torch(boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int) -> torch.Tensor:
    """Indices kept, best first: a box is dropped when it overlaps a better kept one by more than `iou`."""
    order = scores.argsort(descending=True)
    overlaps = box_iou(boxes[order], boxes[order])
    suppressed = torch.zeros(order.numel(), dtype=torch.bool)
    keep = []
    for position in range(order.numel()):
        if suppressed[position]:
            continue
        keep.append(position)
        if len(keep) == limit:
            break
        suppressed |= overlaps[position] > iou
    return order[torch.tensor(keep, dtype=torch.long)]


def batched_nms_torch(boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int) -> torch.Tensor:
    """ONNX NonMaxSuppression's answer for boxes (R, 4) and per-class scores (K, R): (M, 3) rows (0, class, box)."""
    selected = []
    for cls in range(scores.shape[0]):
        kept = nms_torch(boxes, scores[cls], iou, limit)
        selected.append(torch.stack([torch.zeros_like(kept), torch.full_like(kept, cls), kept], dim=1))
    return torch.cat(selected) if selected else torch.zeros((0, 3), dtype=torch.long)


class _Nms(torch.autograd.Function):
    @staticmethod
    def forward(ctx, boxes, scores, iou, limit):  # noqa: ANN001 - torch's signature
        return batched_nms_torch(boxes, scores, iou, limit)

    @staticmethod
    def symbolic(g, boxes, scores, iou, limit):  # noqa: ANN001
        boxes = g.op("Unsqueeze", boxes, g.op("Constant", value_t=torch.tensor([0])))
        scores = g.op("Unsqueeze", scores, g.op("Constant", value_t=torch.tensor([0])))
        return g.op(
            "NonMaxSuppression",
            boxes,
            scores,
            g.op("Constant", value_t=torch.tensor([limit], dtype=torch.long)),
            g.op("Constant", value_t=torch.tensor([iou], dtype=torch.float)),
            g.op("Constant", value_t=torch.tensor([0.0], dtype=torch.float)),
            center_point_box_i=0,
        )


def class_nms(boxes: torch.Tensor, scores: torch.Tensor, iou: float, limit: int) -> torch.Tensor:
    """(M, 3) rows (0, class, box index) per class, at most `limit` per class; ONNX NonMaxSuppression on export."""
    if torch.onnx.is_in_onnx_export():
        return _Nms.apply(boxes, scores, iou, limit)
    return batched_nms_torch(boxes, scores, iou, limit)


def encode(boxes: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    """Deltas (dx, dy, dw, dh) that move anchors onto boxes (Faster R-CNN's parametrisation)."""
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx, cy = anchors[:, 0] + widths / 2, anchors[:, 1] + heights / 2
    bw, bh = (boxes[:, 2] - boxes[:, 0]).clamp(min=1), (boxes[:, 3] - boxes[:, 1]).clamp(min=1)
    bx, by = boxes[:, 0] + bw / 2, boxes[:, 1] + bh / 2
    return torch.stack([(bx - cx) / widths, (by - cy) / heights, torch.log(bw / widths), torch.log(bh / heights)], 1)


def decode(deltas: torch.Tensor, anchors: torch.Tensor, height: int, width: int) -> torch.Tensor:
    widths, heights = anchors[:, 2] - anchors[:, 0], anchors[:, 3] - anchors[:, 1]
    cx, cy = anchors[:, 0] + widths / 2, anchors[:, 1] + heights / 2
    dx, dy, dw, dh = deltas.unbind(1)
    dw, dh = dw.clamp(max=BOX_CLIP), dh.clamp(max=BOX_CLIP)
    x, y = cx + dx * widths, cy + dy * heights
    w, h = widths * torch.exp(dw), heights * torch.exp(dh)
    return torch.stack(
        [(x - w / 2).clamp(0, width), (y - h / 2).clamp(0, height), (x + w / 2).clamp(0, width),
         (y + h / 2).clamp(0, height)], 1,
    )  # fmt: skip

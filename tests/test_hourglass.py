"""The stacked hourglass and its peak decoder: shapes, intermediate supervision, the decoder's sub-pixel answer,
and an ONNX export that ONNX Runtime runs as PyTorch does and that the TensorRT rules take on every JetPack."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from edgeseg.engines.check import check_file, resolve_targets
from edgeseg.metrics import keypoint_distances, pck
from edgeseg.models.hourglass import StackedHourglass, decode_peaks
from edgeseg.models.keypoint_train import heatmap_loss, heatmap_targets


@pytest.mark.parametrize("size", [(64, 64), (120, 160)])
def test_every_stack_gives_heatmaps_at_a_quarter_of_the_input(size):
    model = StackedHourglass(5, stacks=3, width=8)
    frames = torch.rand(2, 3, *size)
    heatmaps = model.train()(frames)
    assert [tuple(h.shape) for h in heatmaps] == [(2, 5, size[0] // 4, size[1] // 4)] * 3
    with torch.no_grad():
        last = model.eval()(frames)
    assert last.shape == (2, 5, size[0] // 4, size[1] // 4) and torch.isfinite(last).all()


def test_intermediate_supervision_reaches_the_trunk_but_not_later_heads():
    """A loss on the first stack's heatmaps trains the stem and the first head, and nothing after the merge."""
    model = StackedHourglass(3, stacks=2, width=8).train()
    first, _ = model(torch.rand(2, 3, 64, 64))
    first.square().mean().backward()
    assert model.stem[0][0].weight.grad.abs().sum() > 0 and model.heads[0].weight.grad.abs().sum() > 0
    assert model.heads[1].weight.grad is None


def gaussian(height: int, width: int, x: float, y: float, sigma: float = 1.5, peak: float = 0.9) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")  # fmt: skip
    return peak * torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))


def test_decoder_refines_the_peak_a_quarter_cell_towards_the_higher_neighbour():
    stride = 4
    truth = [(10.3, 5.8), (3.0, 12.0), (19.7, 0.2)]  # heatmap cells
    heatmaps = torch.stack([gaussian(16, 24, x, y) for x, y in truth])[None]
    decoded = decode_peaks(heatmaps, stride)[0, :, 0]
    for (x, y), (px, py, confidence) in zip(truth, decoded.tolist()):
        expected = ((x + 0.5) * stride - 0.5, (y + 0.5) * stride - 0.5)
        # the argmax alone is off by up to half a cell (2 px); the quarter step brings it within a quarter cell
        assert abs(px - expected[0]) <= 0.25 * stride + 1e-4 and abs(py - expected[1]) <= 0.25 * stride + 1e-4
        assert 0.75 <= confidence <= 0.9  # the peak's height: 0.9 at a cell centre, less between cells
    refined = decoded[0, :2]
    unrefined = torch.tensor([(10 + 0.5) * stride - 0.5, (6 + 0.5) * stride - 0.5])
    target = torch.tensor([(10.3 + 0.5) * stride - 0.5, (5.8 + 0.5) * stride - 0.5])
    assert (refined - target).abs().sum() < (unrefined - target).abs().sum()


def test_decoder_finds_two_tips_in_one_heatmap_instead_of_a_point_between_them():
    """Two graspers: the two highest local maxima, highest first; a tip's shoulder is not a second peak."""
    heatmaps = (gaussian(16, 24, 4, 4, peak=0.6) + gaussian(16, 24, 20, 12, peak=0.9))[None, None]
    (first, second), *_ = decode_peaks(heatmaps, 4, peaks=2)[0, 0:1].tolist()
    assert abs(first[0] - (20.5 * 4 - 0.5)) <= 1.0 and abs(first[1] - (12.5 * 4 - 0.5)) <= 1.0
    assert abs(second[0] - (4.5 * 4 - 0.5)) <= 1.0 and abs(second[1] - (4.5 * 4 - 0.5)) <= 1.0
    assert first[2] > second[2]
    lone = gaussian(16, 24, 10, 8)[None, None]
    (_, shoulder), *_ = decode_peaks(lone, 4, peaks=2)[0, 0:1].tolist()
    assert shoulder[2] == 0  # no second local maximum: what comes second is a shoulder, scored down


class WithPeaks(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return decode_peaks(self.model(x), peaks=2)


def test_exported_hourglass_with_fused_peaks_runs_in_onnx_runtime_and_passes_the_tensorrt_rules(tmp_path):
    import onnxruntime as ort

    model = WithPeaks(StackedHourglass(4, stacks=2, width=8)).eval()
    frames = torch.rand(1, 3, 96, 128)
    path = tmp_path / "hourglass.onnx"
    torch.onnx.export(model, (frames,), str(path), opset_version=17, dynamo=False, input_names=["frame"],
                      output_names=["keypoints"])  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (answer,) = session.run(None, {"frame": frames.numpy()})
    with torch.no_grad():
        expected = model(frames).numpy()
    assert answer.shape == (1, 4, 2, 3)
    assert np.allclose(answer, expected, atol=1e-4)
    verdicts = check_file(path, resolve_targets(None, None))
    assert len(verdicts) == 3 and all(v.builds for v in verdicts), [v.problems for v in verdicts if not v.builds]


def test_targets_decode_back_to_the_labelled_points():
    """Target heatmaps and the decoder share one pixel <-> cell convention: a target decodes to its point (within
    the refinement's quarter cell); a hidden point is a target, a point outside the field is none."""
    truth = np.array([[[37.0, 21.0, 2], [90.0, 50.0, 1], [10.0, 10.0, 0]],
                      [[70.0, 40.0, 2], [5.0, 60.0, 2], [0.0, 0.0, 0]]], np.float32)  # fmt: skip
    targets = heatmap_targets(truth, (96, 128), stride=4)
    assert targets.shape == (3, 24, 32) and targets[2].max() == 0 and targets.max() <= 1
    decoded = decode_peaks(torch.from_numpy(targets)[None], 4, peaks=2)[0].numpy()
    for k in range(2):
        for x, y, visibility in truth[:, k]:
            if visibility > 0:
                nearest = np.hypot(decoded[k, :, 0] - x, decoded[k, :, 1] - y).min()
                assert nearest <= 1.5, (k, x, y, decoded[k])
    distances = keypoint_distances(decoded, truth)
    assert distances.shape == (3, 2) and pck(distances, 1.5) == 1.0  # the three seen points; not the hidden one
    assert pck(keypoint_distances(decoded * np.array([1, 1, 0]), truth), 1.5) == 0.0  # no confident peak: none found


def test_loss_supervises_every_stack():
    targets = torch.rand(2, 3, 8, 8)
    first, second = torch.zeros_like(targets), targets + 0.5
    assert heatmap_loss([first, second], targets, foreground_weight=0).item() == pytest.approx(
        (targets**2).mean().item() + 0.25, rel=1e-5
    )
    weighted = heatmap_loss([first], targets, foreground_weight=20).item()
    assert weighted == pytest.approx(((1 + 20 * targets) * targets**2).mean().item(), rel=1e-5)

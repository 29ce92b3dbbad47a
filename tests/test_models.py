"""The seed families: shapes, the FCN bilinear initialisation, and export parity at opset 17."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import run_cli

from edgeseg.models import ZOO, build_model
from edgeseg.models.fcn import Upsample

FAMILIES = sorted(
    name for name, entry in ZOO.items() if entry.weights is None and entry.kind == "semantic"
)  # the demo entries are tested in test_data


def size_for(name: str) -> int:
    return 96 if ZOO[name].size_multiple > 64 or 64 % ZOO[name].size_multiple else 64


@pytest.mark.parametrize("name", FAMILIES)
def test_family_predicts_per_pixel_logits(name):
    size = size_for(name)
    model = build_model(name, 5, width=8)
    with torch.no_grad():
        logits = model(torch.rand(2, 3, size, size))
    assert logits.shape == (2, 5, size, size)
    assert torch.isfinite(logits).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_family_exports_at_opset_17_with_parity(name, tmp_path, capsys):
    size = size_for(name)
    out = tmp_path / name
    code, _, err = run_cli(
        capsys, "export", name, "-o", out, "--size", f"{size}x{size}", "--classes", "4", "--arg", "width=8"
    )
    assert code == 0, err
    manifest = json.loads((out / "manifest.json").read_text())
    parity = manifest["parity"]
    assert parity["class_map_agreement"] >= 0.999
    assert parity["max_abs_logit_diff"] < 1e-3
    assert manifest["artifacts"][0]["extra"]["opset"] == 17
    import onnx

    model = onnx.load(str(out / "model.onnx"))
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [17]


def test_transposed_upsampling_starts_as_bilinear_interpolation():
    """FCN's learnable upsampling is initialised to bilinear: away from the border it equals a bilinear resize."""
    up = Upsample(3, 4, "transposed")
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        learned = up(x)
    reference = F.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)
    assert learned.shape == reference.shape == (1, 3, 32, 32)
    assert torch.allclose(learned[..., 4:-4, 4:-4], reference[..., 4:-4, 4:-4], atol=1e-5)


@pytest.mark.parametrize("variant", ["fcn32s", "fcn16s", "fcn8s"])
def test_fcn_bilinear_upsampling_option(variant):
    model = build_model(variant, 3, width=8, upsample="bilinear")
    assert not any(isinstance(m, torch.nn.ConvTranspose2d) for m in model.modules())
    with torch.no_grad():
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3, 64, 64)


def test_fcn_variants_fuse_the_skips_they_name():
    fcn8, fcn16, fcn32 = (build_model(n, 3) for n in ("fcn8s", "fcn16s", "fcn32s"))
    assert fcn8.score8 is not None and fcn8.score16 is not None
    assert fcn16.score8 is None and fcn16.score16 is not None
    assert fcn32.score8 is None and fcn32.score16 is None

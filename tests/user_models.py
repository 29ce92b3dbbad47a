"""Models a user might point `edgeseg export package.module:function` at."""

import torch
import torch.nn.functional as F
from torch import nn


class TorchvisionStyle(nn.Module):
    """Returns {'out': logits} like torchvision's segmentation models."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, num_classes, 1))

    def forward(self, x):
        return {"out": self.body(x), "aux": self.body(x) * 0.5}


def tiny_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return TorchvisionStyle(num_classes)


def random_net(num_classes: int = 4) -> nn.Module:
    """Initialised randomly at every call, as a user's untrained architecture is."""
    return TorchvisionStyle(num_classes)


def not_a_model():
    return 42


def broken():
    raise RuntimeError("weights server unreachable")


class ResidualAdd(nn.Module):
    """The class comes from a fine feature h; a residual branch hundreds of times larger is added to it and taken
    away again. Int8 on the Add's inputs (one scale for a range of hundreds) erases h; every Conv is harmless."""

    branch_gain = 300.0

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.branch = nn.Conv2d(8, 8, 1)
        self.head = nn.Conv2d(8, num_classes, 1)
        with torch.no_grad():
            self.branch.weight.mul_(self.branch_gain)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        big = self.branch(h)
        return self.head((h + big) - big)


def residual_add_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return ResidualAdd(num_classes)


class ConstantUpsample(nn.Module):
    """A head that upsamples its logits by a constant factor, as segmentation-models-pytorch's heads do."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.down = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU()
        )
        self.head = nn.Conv2d(16, num_classes, 1)
        self.up = nn.Upsample(scale_factor=4, mode="bilinear", align_corners=False)

    def forward(self, x):
        return self.up(self.head(self.down(x)))


def constant_upsample_net(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return ConstantUpsample(num_classes)


class ResizeToInput(nn.Module):
    """Resizes its logits to the input's size read at run time (x.shape[-2:]), as torchvision's models do."""

    def __init__(self, num_classes: int = 5):
        super().__init__()
        self.body = ConstantUpsample(num_classes)
        self.body.up = nn.Identity()

    def forward(self, x):
        return {"out": F.interpolate(self.body(x), size=x.shape[-2:], mode="bilinear", align_corners=False)}


def resize_to_input_net(num_classes: int = 5) -> nn.Module:
    torch.manual_seed(0)
    return ResizeToInput(num_classes)


class OneClass(nn.Module):
    """Predicts class `winner` on every pixel: a 1x1 conv with zero weights and one large bias."""

    def __init__(self, num_classes: int, winner: int):
        super().__init__()
        self.head = nn.Conv2d(3, num_classes, 1)
        with torch.no_grad():
            self.head.weight.zero_()
            self.head.bias.zero_()
            self.head.bias[winner] = 10.0

    def forward(self, x):
        return self.head(x)


def one_class_net(num_classes: int = 4, winner: int = 0) -> nn.Module:
    return OneClass(num_classes, winner)


class Pyramid(nn.Module):
    """PSPNet-style pooling into 6x6 bins after a stride-2 conv: ONNX exports it only at multiples of 12."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(6)
        self.head = nn.Conv2d(16, num_classes, 1)

    def forward(self, x):
        features = self.conv(x)
        pooled = F.interpolate(self.pool(features), size=features.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.head(torch.cat([features, pooled], 1))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


def pyramid_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return Pyramid(num_classes)


class Bottleneck(nn.Module):
    """ResNet's bottleneck block (1x1, 3x3, 1x1, residual), BatchNorm folded away at export."""

    def __init__(self, cin: int, mid: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        cout = mid * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(),
            nn.Conv2d(mid, mid, 3, stride, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU(), nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip
        self.skip = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x):
        return torch.relu(self.body(x) + self.skip(x))


class FCNResNet50(nn.Module):
    """torchvision's FCN-ResNet50 in shape: ResNet-50 (3, 4, 6, 3 bottlenecks) with its last two stages dilated to
    output stride 8, and FCN's 3x3 head; 32.9 M parameters. Written here, without torchvision."""

    def __init__(self, num_classes: int = 21):
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)
        ]  # fmt: skip
        cin = 64
        for mid, blocks, stride, dilation in ((64, 3, 1, 1), (128, 4, 2, 1), (256, 6, 1, 2), (512, 3, 1, 4)):
            for index in range(blocks):
                layers.append(Bottleneck(cin, mid, stride if index == 0 else 1, dilation))
                cin = mid * 4
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Conv2d(2048, 512, 3, padding=1, bias=False),
            nn.BatchNorm2d(512),
            nn.ReLU(),
            nn.Conv2d(512, num_classes, 1),
        )

    def forward(self, x):
        logits = self.head(self.backbone(x))
        return {"out": F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)}


def fcn_resnet50(num_classes: int = 21) -> nn.Module:
    torch.manual_seed(0)
    model = FCNResNet50(num_classes)
    for module in model.modules():  # trained-looking BatchNorm statistics, so activations keep a scale
        if isinstance(module, nn.BatchNorm2d):
            module.running_var.fill_(4.0)
    return model


class ConcatOfScales(ResidualAdd):
    """A fine feature h concatenated with a branch hundreds of times larger, then sliced back out: one scale for the
    whole Concat (as the CPU form quantizes it) erases h; TensorRT's form leaves Concat and Slice alone."""

    def forward(self, x):
        h = torch.relu(self.stem(x))
        joined = torch.cat([h, self.branch(h)], 1)
        return self.head(joined[:, :8])


def concat_of_scales_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return ConcatOfScales(num_classes)


class DetectionDicts(nn.Module):
    """Returns what torchvision's detection models return in eval mode: one dict per image with boxes, labels,
    scores and masks, as many detections as it finds."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x):
        score = torch.sigmoid(self.conv(x)).mean(dim=(1, 2, 3))
        height, width = x.shape[-2:]
        return [
            {
                "boxes": torch.tensor([[0.0, 0.0, width / 2, height / 2]]),
                "labels": torch.tensor([1]),
                "scores": s.reshape(1),
                "masks": torch.sigmoid(self.conv(x[i : i + 1])),
            }
            for i, s in enumerate(score)
        ]


def detection_net() -> nn.Module:
    torch.manual_seed(0)
    return DetectionDicts()


class Classifier(nn.Module):
    """A 10-class image classifier: one vector of scores per image."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        return self.fc(self.features(x).flatten(1))


def classifier_net(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return Classifier(num_classes)


class Binary(nn.Module):
    """One output channel, as segmentation-models-pytorch's classes=1 (a polyp or lesion model): its logit > 0 is the
    foreground. Biased so that the frames have both classes."""

    def __init__(self, squeeze: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 1, 1))
        self.squeeze = squeeze

    def forward(self, x):
        logits = self.body(x)
        return logits[:, 0] if self.squeeze else logits


def binary_net(squeeze: bool = False) -> nn.Module:
    torch.manual_seed(0)
    return Binary(squeeze)


class HalfOverflow(ResidualAdd):
    """A middle activation past float16's 65504 (a branch thousands of times larger, scaled back down before the
    head), as a model trained without FP16 in mind can have: in float16 it is inf, and so is every class after it.
    ResidualAdd's layers, with a larger branch."""

    branch_gain = 300000.0

    def forward(self, x):
        h = torch.relu(self.stem(x))
        big = torch.relu(self.branch(h))
        return self.head(h + big * 1e-4)


def half_overflow_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return HalfOverflow(num_classes)


class ChannelNorm(nn.Module):
    """LayerNorm over channels at every pixel, as Segformer's and UPerNet's (ConvNeXt, Swin) blocks have: opset 17
    writes it as one LayerNormalization node, which TensorRT 8.5's parser lacks."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.norms = nn.ModuleList(nn.LayerNorm(8) for _ in range(3))
        self.head = nn.Conv2d(8, num_classes, 1)

    def forward(self, x):
        h = self.stem(x).permute(0, 2, 3, 1)
        for norm in self.norms:
            h = h + torch.relu(norm(h))
        return self.head(h.permute(0, 3, 1, 2))


def layer_norm_net(num_classes: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return ChannelNorm(num_classes)

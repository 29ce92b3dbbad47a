"""Procedural labelled scenes: temporally coherent video with pixel-exact class maps.

Each scene is deterministic in (seed, frame index): frame k of seed s is the same on every
machine, so held-out seeds give honest accuracy figures. Numpy and OpenCV only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.errors import EdgesegError

DRIVING_CLASSES = [
    ("sky", (70, 130, 180)),
    ("road", (128, 64, 128)),
    ("lane marking", (255, 255, 255)),
    ("sidewalk", (244, 35, 232)),
    ("vegetation", (107, 142, 35)),
    ("building", (70, 70, 70)),
    ("vehicle", (0, 0, 142)),
    ("pedestrian", (220, 20, 60)),
    ("traffic sign", (220, 220, 0)),
]
MEDICAL_CLASSES = [
    ("background", (0, 0, 0)),
    ("tissue", (255, 160, 122)),
    ("lesion", (0, 200, 0)),
    ("instrument", (0, 120, 255)),
    ("specular", (255, 255, 0)),
]


def smooth_noise(rng: np.random.Generator, height: int, width: int, octaves: int = 4) -> np.ndarray:
    """Multi-octave value noise in [0, 1], made by resizing random grids: a cheap texture."""
    total = np.zeros((height, width), np.float32)
    for octave in range(octaves):
        cells = 4 * 2**octave
        grid = rng.random((cells, cells)).astype(np.float32)
        total += cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC) / 2**octave
    total -= total.min()
    return total / max(total.max(), 1e-6)


@dataclass
class SceneFrame:
    image: np.ndarray  # uint8 HxWx3 BGR
    label: np.ndarray  # uint8 HxW class indices
    instances: np.ndarray | None = None  # uint16 HxW: each object's own id (0: none), where it is seen


# The driving classes that are countable things: each object of these gets an instance id.
CLASS_OF = {"vehicle": 6, "pedestrian": 7, "sign": 8}
INSTANCE_CLASSES = (6, 7, 8)


def compact_ids(instances: np.ndarray) -> np.ndarray:
    """Instance ids renumbered 1..K in drawing order, leaving out objects wholly hidden or out of frame."""
    present = np.unique(instances)
    present = present[present > 0]
    lookup = np.zeros(int(instances.max()) + 1, np.uint16)
    lookup[present] = np.arange(1, len(present) + 1, dtype=np.uint16)
    return lookup[instances]


class Scene:
    """Base: draws label and image together, then adds lighting change and sensor noise."""

    classes: list[tuple[str, tuple[int, int, int]]] = []
    has_instances = False  # whether render() gives each object its own id

    def __init__(self, width: int = 320, height: int = 240, seed: int = 0):
        self.width, self.height, self.seed = width, height, seed
        self.rng = np.random.default_rng(seed)
        # Sensor noise: a bank twice the frame size, cropped at a per-frame offset (drawing fresh
        # Gaussian noise for every 720p frame would cost more than rendering the scene).
        self.noise = np.random.default_rng((seed, 1)).normal(0.0, 4.0, (2 * height, 2 * width)).astype(np.float32)

    def render(self, index: int) -> SceneFrame:
        raise NotImplementedError

    def finish(self, image: np.ndarray, index: int) -> np.ndarray:
        dy, dx = np.random.default_rng((self.seed, index)).integers(0, (self.height, self.width))
        gain = 0.85 + 0.15 * math.sin(index / 40.0 + self.seed)
        noise = self.noise[dy : dy + self.height, dx : dx + self.width, None]
        return np.clip(image.astype(np.float32) * gain + noise, 0, 255).astype(np.uint8)


class DrivingScene(Scene):
    """A road in perspective with lanes and a gentle curve, buildings, trees, vehicles, people, signs."""

    classes = DRIVING_CLASSES
    has_instances = True

    def __init__(self, width: int = 320, height: int = 240, seed: int = 0):
        super().__init__(width, height, seed)
        rng = self.rng
        self.buildings = [
            (rng.uniform(0, 3), rng.uniform(0.08, 0.3), rng.uniform(0.05, 0.16), rng.integers(60, 160))
            for _ in range(14)
        ]
        self.trees = [(rng.uniform(0, 3), rng.uniform(0.04, 0.09)) for _ in range(8)]
        self.vehicles = [
            (
                rng.uniform(-0.3, 0.3),
                rng.uniform(5, 60),
                rng.uniform(-0.4, 0.4),
                tuple(int(c) for c in rng.integers(30, 220, 3)),
            )
            for _ in range(4)
        ]
        self.pedestrians = [(rng.choice([-1, 1]) * rng.uniform(1.1, 1.5), rng.uniform(8, 50)) for _ in range(3)]
        self.signs = [(rng.choice([-1, 1]) * 1.2, rng.uniform(10, 60)) for _ in range(2)]
        self.shading = (0.85 + 0.3 * smooth_noise(rng, height, width))[..., None]

    def render(self, index: int) -> SceneFrame:
        w, h, t = self.width, self.height, index / 30.0
        image = np.zeros((h, w, 3), np.uint8)
        label = np.zeros((h, w), np.uint8)
        instances = np.zeros((h, w), np.uint16)
        horizon = int(h * (0.42 + 0.02 * math.sin(t * 0.7)))
        vanish_x = w * (0.5 + 0.12 * math.sin(t * 0.25 + self.seed))
        curvature = 0.0006 * math.sin(t * 0.2 + 2 * self.seed)  # the road bends left and right
        travel = t * 12.0  # metres driven: moves lane dashes, roadside objects

        def ground_y(z: float) -> float:  # image row of a ground point at depth z (metres)
            return horizon + (h - horizon) * 3.0 / z

        def ground_x(lateral: float, z: float) -> float:  # lateral in half-road widths
            scale = (ground_y(z) - horizon) / (h - horizon)
            return vanish_x + (lateral + curvature * z * z) * scale * w * 0.9 + (w / 2 - vanish_x) * scale

        # Sky: vertical gradient.
        sky = np.linspace(235, 170, max(horizon, 1), dtype=np.float32)
        image[:horizon] = np.stack([sky, sky * 0.85, sky * 0.6], axis=1)[:, None, :].astype(np.uint8)
        label[:horizon] = 0
        # Buildings and trees on the horizon, scrolling with parallax.
        for phase, height_frac, width_frac, grey in self.buildings:
            x = ((phase - t * 0.02) % 3.0) / 3.0 * (w * 1.6) - w * 0.3
            top = int(horizon - height_frac * h)
            x0, x1 = int(x), int(x + width_frac * w)
            cv2.rectangle(image, (x0, top), (x1, horizon + 2), (int(grey), int(grey), int(grey) + 10), -1)
            cv2.rectangle(label, (x0, top), (x1, horizon + 2), 5, -1)
            for wy in range(top + 4, horizon - 4, 8):  # windows
                cv2.line(image, (x0 + 3, wy), (x1 - 3, wy), (int(grey) - 40,) * 3, 2)
        for phase, radius in self.trees:
            x = ((phase - t * 0.03) % 3.0) / 3.0 * (w * 1.6) - w * 0.3
            center, axes = (int(x), int(horizon - radius * h * 0.6)), (int(radius * w), int(radius * h * 1.2))
            cv2.ellipse(image, center, axes, 0, 0, 360, (40, 120, 50), -1)
            cv2.ellipse(label, center, axes, 0, 0, 360, 4, -1)
        # Ground: sidewalk everywhere below the horizon, the road polygon on top.
        image[horizon:] = (150, 150, 160)
        label[horizon:] = 3
        far, near = 200.0, 2.5
        depths = np.geomspace(near, far, 24)
        road = np.array(
            [[ground_x(-1, z), ground_y(z)] for z in depths] + [[ground_x(1, z), ground_y(z)] for z in depths[::-1]],
            np.int32,
        )
        cv2.fillPoly(image, [road], (75, 70, 70))
        cv2.fillPoly(label, [road], 1)
        # Lane dashes every 6 m, 3 m long, sliding towards the camera.
        for lateral in (-0.33, 0.33):
            start = -(travel % 6.0)
            for k in range(40):
                z0, z1 = 3.0 + start + 6 * k, 6.0 + start + 6 * k
                if z1 <= near or z0 > far:
                    continue
                z0 = max(z0, near)
                quad = np.array(
                    [
                        [ground_x(lateral - 0.03, z0), ground_y(z0)],
                        [ground_x(lateral + 0.03, z0), ground_y(z0)],
                        [ground_x(lateral + 0.03, z1), ground_y(z1)],
                        [ground_x(lateral - 0.03, z1), ground_y(z1)],
                    ],
                    np.int32,
                )
                cv2.fillPoly(image, [quad], (235, 235, 235))
                cv2.fillPoly(label, [quad], 2)
        # Objects far to near, so nearer ones occlude farther ones.
        objects = []
        for lateral, z0, speed, color in self.vehicles:
            z = 5 + (z0 - t * speed * 3) % 70
            objects.append((z, "vehicle", lateral, color))
        for lateral, z0 in self.pedestrians:
            objects.append((4 + (z0 - travel) % 30, "pedestrian", lateral, None))
        for lateral, z0 in self.signs:
            objects.append((4 + (z0 - travel) % 36, "sign", lateral, None))
        # Each object is drawn into the instance plane with its own id, far to near like the image: a part that a
        # nearer object hides belongs to the nearer one.
        for number, (z, kind, lateral, color) in enumerate(sorted(objects, reverse=True), start=1):
            scale = (ground_y(z) - horizon) / (h - horizon)
            planes = ((label, CLASS_OF[kind]), (instances, number))
            self._draw_object(image, planes, kind, ground_x(lateral, z), ground_y(z), scale, color)
        # Texture, then a little horizontal motion blur as from a moving camera.
        image = cv2.blur(image.astype(np.float32) * self.shading, (3, 1))
        return SceneFrame(self.finish(image, index), label, compact_ids(instances))

    def _draw_object(
        self,
        image: np.ndarray,
        planes: tuple[tuple[np.ndarray, int], ...],
        kind: str,
        x: float,
        y: float,
        scale: float,
        color,
    ) -> None:
        """The object in the image, and its shape with each plane's value (class index, instance id)."""
        w = self.width
        if kind == "vehicle":
            half, height = 0.16 * w * scale, 0.22 * w * scale
            shadow = np.array(
                [
                    [x - half * 1.1, y],
                    [x + half * 1.1, y],
                    [x + half * 1.3, y + height * 0.12],
                    [x - half * 1.3, y + height * 0.12],
                ],
                np.int32,
            )
            region = image[:, :]
            cv2.fillPoly(region, [shadow], (40, 38, 38))
            body = (int(x - half), int(y - height)), (int(x + half), int(y))
            cv2.rectangle(image, *body, color, -1)
            cv2.rectangle(
                image,
                (int(x - half * 0.8), int(y - height * 0.9)),
                (int(x + half * 0.8), int(y - height * 0.55)),
                (40, 40, 50),
                -1,
            )
            for plane, value in planes:
                cv2.rectangle(plane, *body, value, -1)
        elif kind == "pedestrian":
            half, height = 0.05 * w * scale, 0.3 * w * scale
            cv2.rectangle(image, (int(x - half), int(y - height * 0.85)), (int(x + half), int(y)), (60, 40, 140), -1)
            cv2.circle(image, (int(x), int(y - height * 0.92)), max(1, int(half * 0.9)), (120, 150, 200), -1)
            for plane, value in planes:
                cv2.rectangle(plane, (int(x - half), int(y - height * 0.85)), (int(x + half), int(y)), value, -1)
                cv2.circle(plane, (int(x), int(y - height * 0.92)), max(1, int(half * 0.9)), value, -1)
        else:
            pole, radius = max(1, int(0.012 * w * scale)), max(2, int(0.09 * w * scale))
            top = int(y - 0.45 * w * scale)
            cv2.line(image, (int(x), int(y)), (int(x), top), (90, 90, 90), pole)
            cv2.circle(image, (int(x), top), radius, (30, 200, 230), -1)
            for plane, value in planes:
                cv2.line(plane, (int(x), int(y)), (int(x), top), value, pole)
                cv2.circle(plane, (int(x), top), radius, value, -1)


class MedicalScene(Scene):
    """Endoscopy-like: textured tissue in a circular field, a polyp, a moving instrument, highlights."""

    classes = MEDICAL_CLASSES

    def __init__(self, width: int = 320, height: int = 240, seed: int = 0):
        super().__init__(width, height, seed)
        rng = self.rng
        self.texture = smooth_noise(rng, height * 2, width * 2, octaves=5)
        self.lesions = [
            (rng.uniform(0.25, 0.75), rng.uniform(0.25, 0.75), rng.uniform(0.06, 0.14), rng.uniform(0, 6.28))
            for _ in range(int(rng.integers(1, 3)))
        ]
        self.instrument_side = float(rng.choice([-1.0, 1.0]))
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        radius = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
        self.field = radius < 0.98
        self.vignette = np.clip(1.15 - 0.7 * radius**2, 0.2, 1.0)[..., None]

    def render(self, index: int) -> SceneFrame:
        w, h, t = self.width, self.height, index / 30.0
        ox = int((0.5 + 0.4 * math.sin(t * 0.3 + self.seed)) * w)
        oy = int((0.5 + 0.4 * math.cos(t * 0.23)) * h)
        tex = self.texture[oy : oy + h, ox : ox + w]
        image = np.stack([90 + 60 * tex, 100 + 70 * tex, 200 + 45 * tex], axis=-1)
        label = np.ones((h, w), np.uint8)
        shift = (math.sin(t * 0.3) * 0.08 * w, math.cos(t * 0.23) * 0.08 * h)
        for cx, cy, size, phase in self.lesions:
            center = (int(cx * w - shift[0]), int(cy * h - shift[1]))
            axes = (int(size * w * (1 + 0.1 * math.sin(t + phase))), int(size * w * 0.75))
            cv2.ellipse(image, center, axes, math.degrees(phase), 0, 360, (60, 70, 150), -1)
            cv2.ellipse(label, center, axes, math.degrees(phase), 0, 360, 2, -1)
        # Instrument: a shaft entering from one side, moving in and out.
        reach = 0.35 + 0.2 * math.sin(t * 0.8 + self.seed)
        side = self.instrument_side
        base_x = w if side > 0 else 0
        tip = (base_x - side * reach * w, h * (0.6 + 0.1 * math.sin(t * 0.5)))
        shaft = np.array(
            [[base_x, h * 0.95], [base_x, h * 1.1], [tip[0], tip[1] + 0.04 * h], [tip[0], tip[1] - 0.04 * h]], np.int32
        )
        cv2.fillPoly(image, [shaft], (170, 170, 175))
        cv2.fillPoly(label, [shaft], 3)
        # Specular highlights: small saturated blobs on tissue and lesions.
        highlight_rng = np.random.default_rng((self.seed, index // 15))
        for _ in range(4):
            center = (int(highlight_rng.uniform(0.2, 0.8) * w), int(highlight_rng.uniform(0.2, 0.8) * h))
            axes = (max(2, int(0.03 * w)), max(1, int(0.018 * w)))
            if label[center[1], center[0]] in (1, 2):
                cv2.ellipse(image, center, axes, 20, 0, 360, (250, 250, 250), -1)
                cv2.ellipse(label, center, axes, 20, 0, 360, 4, -1)
        image = image * self.vignette
        image[~self.field] = 0
        label[~self.field] = 0
        return SceneFrame(self.finish(image, index), label)

    def finish(self, image: np.ndarray, index: int) -> np.ndarray:
        out = super().finish(image, index)
        out[~self.field] = 0  # outside the scope's field of view stays black
        return out


SCENES: dict[str, type[Scene]] = {"driving": DrivingScene, "medical": MedicalScene}


def make_scene(name: str, width: int = 320, height: int = 240, seed: int = 0) -> Scene:
    try:
        scene_type = SCENES[name]
    except KeyError:
        raise EdgesegError(f"unknown synthetic scene '{name}'; choose one of: {', '.join(SCENES)}") from None
    return scene_type(width, height, seed)

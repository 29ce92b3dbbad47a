"""Procedural labelled scenes: temporally coherent video with pixel-exact class maps.

Each scene is deterministic in (seed, frame index): frame k of seed s is the same on every
machine, so held-out seeds give honest accuracy figures. Numpy and OpenCV only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edgeseg.data.endoscopy import (
    Instrument,
    barrel_maps,
    barrel_point,
    draw_instrument,
    light_falloff,
    motion_blur,
    rim_crossing,
    smoke,
)
from edgeseg.data.keypoints import KeypointSchema
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
# The points of each grasper in the medical scene (the pose names of endoscopy.Instrument), and the bones between
# them: where the shaft enters the field, the joint, the end of each jaw, and the tip between the jaws.
KEYPOINTS = ("tip", "jaw_a", "jaw_b", "joint", "entry")
RIM = 0.95  # the entry keypoint's normalised radius: just inside the scope's field (< 0.98)
SKELETON = (("entry", "joint"), ("joint", "jaw_a"), ("joint", "jaw_b"), ("joint", "tip"))
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
    keypoints: np.ndarray | None = None  # float32 (objects, KEYPOINTS, 3): x, y in pixels and COCO's visibility


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
    keypoint_schema: KeypointSchema | None = None  # what render()'s keypoints are, where it gives any

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
    """Laparoscopy-like: tissue that breathes and deforms, lesions, blood, moving specular highlights,
    graspers that occlude and leave the field, surgical smoke, motion blur, barrel distortion and a
    light source that moves, in a circular field.

    The tissue lives on a "world" twice the frame's size that the camera pans over; everything the
    camera does to the picture (distortion) is done to the label too, nearest-neighbour, and
    everything that only veils the picture (smoke, blur, glare halos, light) leaves the label alone.
    Blood over a lesion hides it: those pixels are tissue.
    """

    classes = MEDICAL_CLASSES
    keypoint_schema = KeypointSchema(KEYPOINTS, SKELETON, (3, "instrument"))

    def __init__(self, width: int = 320, height: int = 240, seed: int = 0):
        super().__init__(width, height, seed)
        rng = self.rng
        self.world, self.world_label = self._world(rng, width, height)
        # Smooth fields (smoke, light, warp) are computed on a grid an eighth of the frame's size and upsampled.
        self.coarse = (width // 8 + 2, height // 8 + 2)
        self.smoke_texture = smooth_noise(rng, self.coarse[1] * 2, self.coarse[0] * 2, octaves=3)
        self.smoke_colour = np.full((height, width, 3), (205, 205, 212), np.float32)
        self.highlights = [(rng.uniform(0.35, 1.65) * width, rng.uniform(0.35, 1.65) * height, rng.uniform(0, 6.3))
                           for _ in range(int(rng.integers(5, 10)))]  # fmt: skip
        self.instruments = [
            Instrument(
                angle=float(rng.uniform(0, 2 * math.pi)),
                sweep=float(rng.uniform(0.2, 0.6)),
                speed=float(rng.uniform(0.5, 1.6)),
                phase=float(rng.uniform(0, 2 * math.pi)),
                jaw_speed=float(rng.uniform(1.0, 4.0)),
                aim=(float(rng.uniform(-0.3, 0.3)), float(rng.uniform(-0.3, 0.3))),
            )
            for _ in range(int(rng.integers(1, 3)))
        ]
        self.smoke_phase = float(rng.uniform(0, 2 * math.pi))
        self.lens_strength = float(rng.uniform(0.15, 0.35))
        self.lens = barrel_maps(width, height, self.lens_strength)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        self.grid = xx - width / 2, yy - height / 2
        radius = np.hypot((xx - width / 2) / (width / 2), (yy - height / 2) / (height / 2))
        self.field = radius < 0.98  # RIM lies just inside

    @staticmethod
    def _world(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
        """Tissue with vessels, lesions and pools of blood, twice the frame's size, and its label."""
        world_w, world_h = 2 * width, 2 * height
        tex = smooth_noise(rng, world_h, world_w, octaves=5)
        world = np.stack([90 + 60 * tex, 100 + 70 * tex, 200 + 45 * tex], axis=-1)
        label = np.ones((world_h, world_w), np.uint8)
        for _ in range(int(rng.integers(6, 12))):  # vessels: dark red curves, still tissue
            points = np.cumsum(rng.normal(0, 0.06 * width, (8, 2)), axis=0) + rng.uniform(0, 1, 2) * (world_w, world_h)
            thickness = max(1, int(rng.uniform(0.004, 0.012) * width))
            cv2.polylines(world, [points.astype(np.int32)], False, (60, 55, 150), thickness, cv2.LINE_AA)
        for _ in range(int(rng.integers(2, 5))):  # lesions: irregular, darker, textured
            outline = blob(rng, rng.uniform(0.5, 1.5) * width, rng.uniform(0.5, 1.5) * height,
                           rng.uniform(0.05, 0.13) * width)  # fmt: skip
            mask = np.zeros_like(label)
            cv2.fillPoly(mask, [outline], 1)
            shade = (0.75 + 0.5 * tex[mask > 0])[:, None]
            world[mask > 0] = np.array([60, 75, 160], np.float32) * shade
            label[mask > 0] = 2
        for _ in range(int(rng.integers(1, 4))):  # blood: dark, glossy, hides what is under it
            outline = blob(rng, rng.uniform(0.4, 1.6) * width, rng.uniform(0.4, 1.6) * height,
                           rng.uniform(0.03, 0.09) * width)  # fmt: skip
            mask = np.zeros_like(label)
            cv2.fillPoly(mask, [outline], 1)
            world[mask > 0] = np.array([35, 30, 120], np.float32) * (0.7 + 0.6 * tex[mask > 0])[:, None]
            label[mask > 0] = 1
        return world.astype(np.float32), label

    def render(self, index: int) -> SceneFrame:
        t = index / 30.0
        pan = self._camera(t)
        image, label = self._tissue(t, pan)
        self._specular(image, label, t, pan)
        owner = np.zeros((self.height, self.width), np.uint8)
        image = self._instruments(image, label, owner, t)
        image = self._smoke(image, t, pan)
        previous = self._camera(t - 1 / 30)
        image = motion_blur(image, 1.5 * (pan[0] - previous[0]), 1.5 * (pan[1] - previous[1]))
        image = cv2.remap(image, *self.lens, cv2.INTER_LINEAR)
        label = cv2.remap(label, *self.lens, cv2.INTER_NEAREST)
        image *= self._light(t)
        label[~self.field] = 0
        return SceneFrame(self.finish(image, index), label, keypoints=self._keypoints(t, owner))

    def _keypoints(self, t: float, owner: np.ndarray) -> np.ndarray:
        """Each instrument's KEYPOINTS as (x, y, visibility) in the picture's pixels (after the lens), COCO's
        visibility: 0 outside the field, 1 hidden behind the other instrument, 2 seen (smoke does not hide). The
        entry is where the shaft crosses the field's rim (just inside it); while the joint is outside the field
        too, the shaft's start outside it, with visibility 0."""
        w, h = self.width, self.height
        points = np.zeros((len(self.instruments), len(KEYPOINTS), 3), np.float32)
        for number, instrument in enumerate(self.instruments, start=1):
            pose = instrument.pose(t, w, h)
            pose["entry"] = rim_crossing(pose["entry"], pose["joint"], w, h, RIM, self.lens_strength) or pose["entry"]
            for k, name in enumerate(KEYPOINTS):
                x, y = pose[name]
                u, v = barrel_point(x, y, w, h, self.lens_strength)
                column, row = int(round(u)), int(round(v))
                if not (0 <= column < w and 0 <= row < h) or not self.field[row, column]:
                    points[number - 1, k] = (u, v, 0)
                    continue
                behind = owner[min(h - 1, max(0, int(round(y)))), min(w - 1, max(0, int(round(x))))] > number
                points[number - 1, k] = (u, v, 1 if behind else 2)
        return points

    def _light(self, t: float) -> np.ndarray:
        """Per-pixel BGR gain: the light source's falloff from where it points, its brightness (a slow drift
        and a flicker) and its colour temperature."""
        aim = (0.25 * math.sin(0.4 * t + self.seed), 0.25 * math.cos(0.31 * t))
        warmth = 0.08 * math.sin(0.2 * t + self.seed)
        brightness = 0.8 + 0.25 * math.sin(0.5 * t + 2 * self.seed) + 0.04 * math.sin(7 * t)
        gain = light_falloff(*self.coarse, aim, 1.4) * (brightness * np.array([1 - warmth, 1, 1 + warmth], np.float32))
        return cv2.resize(gain, (self.width, self.height), interpolation=cv2.INTER_LINEAR)

    def _camera(self, t: float) -> tuple[float, float]:
        """Where the camera looks on the world (its top-left corner), with bursts of shaking."""
        shake = max(0.0, math.sin(0.45 * t + self.seed)) ** 4
        x = (0.5 + 0.4 * math.sin(t * 0.3 + self.seed) + 0.06 * shake * math.sin(9 * t)) * self.width
        y = (0.5 + 0.4 * math.cos(t * 0.23) + 0.06 * shake * math.cos(8 * t)) * self.height
        return x, y

    def _tissue(self, t: float, pan: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """The world seen from `pan`, breathing (a slow scale) and deforming (a smooth travelling warp)."""
        w, h = self.width, self.height
        u = np.linspace(0, 6.3, self.coarse[0], dtype=np.float32)[None, :]
        v = np.linspace(0, 6.3, self.coarse[1], dtype=np.float32)[:, None]
        warp_x = 0.025 * w * np.sin(v / 0.8 + 1.3 * t) * np.cos(u + 0.7 * t)
        warp_y = 0.025 * h * np.cos(u / 0.9 + 1.1 * t + 1.0) * np.sin(v + 0.5 * t)
        warp = cv2.resize(np.dstack([warp_x, warp_y]), (w, h), interpolation=cv2.INTER_LINEAR)
        breath = 1 + 0.04 * math.sin(1.4 * t)
        map_x = self.grid[0] * breath + warp[..., 0] + (pan[0] + w / 2)
        map_y = self.grid[1] * breath + warp[..., 1] + (pan[1] + h / 2)
        image = cv2.remap(self.world, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
        label = cv2.remap(self.world_label, map_x, map_y, cv2.INTER_NEAREST, borderMode=cv2.BORDER_REFLECT)
        return image, label

    def _specular(self, image: np.ndarray, label: np.ndarray, t: float, pan: tuple[float, float]) -> None:
        """Glare: saturated cores (class specular) on wet tissue, lesions and blood, with a soft halo that is
        not labelled. They ride on the tissue and slide as the light moves."""
        w, h = self.width, self.height
        for x, y, phase in self.highlights:
            centre = (int(x - pan[0] + 0.06 * w * math.sin(0.9 * t + phase)),
                      int(y - pan[1] + 0.05 * h * math.cos(0.7 * t + phase)))  # fmt: skip
            if not (0 <= centre[0] < w and 0 <= centre[1] < h) or label[centre[1], centre[0]] not in (1, 2):
                continue
            axes = (max(2, int(w * (0.03 + 0.02 * math.sin(2 * t + phase)))), max(1, int(w * 0.014)))
            angle = math.degrees(phase + 0.3 * math.sin(t))
            # Each highlight in its own window, so the halo's blur costs the window, not the frame.
            margin = 3 * axes[0]
            x0, y0 = max(0, centre[0] - margin), max(0, centre[1] - margin)
            x1, y1 = min(w, centre[0] + margin + 1), min(h, centre[1] + margin + 1)
            local = (centre[0] - x0, centre[1] - y0)
            glow = np.zeros((y1 - y0, x1 - x0), np.float32)
            cv2.ellipse(glow, local, (axes[0] * 2, axes[1] * 3), angle, 0, 360, 0.5, -1)
            halo = np.minimum(cv2.GaussianBlur(glow, (0, 0), 0.3 * axes[0]), 0.9)[..., None]
            window = image[y0:y1, x0:x1]
            window += (255 - window) * halo
            cv2.ellipse(window, local, axes, angle, 0, 360, (252, 252, 252), -1)
            cv2.ellipse(label[y0:y1, x0:x1], local, axes, angle, 0, 360, 4, -1)

    def _instruments(self, image: np.ndarray, label: np.ndarray, owner: np.ndarray, t: float) -> np.ndarray:
        """The graspers, smeared over the exposure (the mean of three instants), labelled mid-exposure, and each
        one's number (1, 2) in `owner` where it is seen, the later drawn in front.

        Only the window around the instruments is composited: they cover a small part of the frame.
        """
        w, h = self.width, self.height
        instants = [[i.pose(instant, w, h) for i in self.instruments] for instant in (t - 1 / 60, t, t + 1 / 60)]
        points = np.array([p for poses in instants for pose in poses for p in pose.values()])
        pad = 0.06 * w
        x0, y0 = (max(0, int(v)) for v in points.min(0) - pad)
        x1, y1 = min(w, int(points[:, 0].max() + pad) + 1), min(h, int(points[:, 1].max() + pad) + 1)
        if x1 <= x0 or y1 <= y0:
            return image  # every instrument is out of the field
        size = (y1 - y0, x1 - x0)
        paint, coverage = np.zeros((*size, 3), np.float32), np.zeros(size, np.float32)
        for instant, poses in enumerate(instants):
            layer, mask = np.zeros_like(paint), np.zeros_like(coverage)
            for number, pose in enumerate(poses, start=1):
                planes = ((mask, 1.0), (label[y0:y1, x0:x1], 3), (owner[y0:y1, x0:x1], number))
                draw_instrument(layer, planes if instant == 1 else planes[:1],
                                {k: (x - x0, y - y0) for k, (x, y) in pose.items()}, w)  # fmt: skip
            paint += layer
            coverage += mask
        window = image[y0:y1, x0:x1]
        window[:] = window * (1 - coverage[..., None] / 3) + paint / 3
        return image

    def _smoke(self, image: np.ndarray, t: float, pan: tuple[float, float]) -> np.ndarray:
        """Bursts of cautery smoke that drift upwards and thin out."""
        burst = max(0.0, math.sin(0.35 * t + self.smoke_phase)) ** 2
        density = 0.03 + 0.65 * burst
        cols, rows = self.coarse
        x = int((pan[0] * 0.5 + 7 * t) / 8) % cols
        y = int((pan[1] * 0.5 - 11 * t) / 8) % rows
        veil = np.clip(density * (0.3 + self.smoke_texture[y : y + rows, x : x + cols]) ** 1.5, 0, 0.8)
        return smoke(image, cv2.resize(veil, (self.width, self.height), interpolation=cv2.INTER_LINEAR),
                     self.smoke_colour)  # fmt: skip

    def finish(self, image: np.ndarray, index: int) -> np.ndarray:
        out = super().finish(image, index)
        out[~self.field] = 0  # outside the scope's field of view stays black
        return out


def blob(rng: np.random.Generator, x: float, y: float, radius: float) -> np.ndarray:
    """An irregular closed outline around (x, y): a circle whose radius wobbles with angle."""
    angles = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    wobble = 1 + 0.25 * np.sin(3 * angles + rng.uniform(0, 6.3)) + 0.12 * np.sin(5 * angles + rng.uniform(0, 6.3))
    return np.stack([x + radius * wobble * np.cos(angles), y + radius * wobble * np.sin(angles)], 1).astype(np.int32)


SCENES: dict[str, type[Scene]] = {"driving": DrivingScene, "medical": MedicalScene}


def make_scene(name: str, width: int = 320, height: int = 240, seed: int = 0) -> Scene:
    try:
        scene_type = SCENES[name]
    except KeyError:
        raise EdgesegError(f"unknown synthetic scene '{name}'; choose one of: {', '.join(SCENES)}") from None
    return scene_type(width, height, seed)

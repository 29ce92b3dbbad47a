"""What makes a laparoscope's picture hard to segment, as image operations for the procedural medical scene.

Each function works on float32 BGR images and leaves labels alone (or moves them with the same geometry,
nearest-neighbour), so the class map stays pixel-exact while the picture degrades: barrel distortion
from the wide-angle optics, smearing from camera motion, surgical smoke, the light source's falloff.
Numpy and OpenCV only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np


def barrel_maps(width: int, height: int, strength: float) -> tuple[np.ndarray, np.ndarray]:
    """cv2.remap tables for a wide-angle scope's barrel distortion.

    A picture point at normalised radius r shows the scene at r(1 + k r^2) / (1 + k): the centre is
    magnified and the rim compressed, and the rim (r = 1) stays where it is, so nothing outside the
    rendered frame is ever sampled inside the circular field.
    """
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    x, y = (xx - cx) / (width / 2), (yy - cy) / (height / 2)
    scale = (1 + strength * (x * x + y * y)) / (1 + strength)
    return cx + x * scale * (width / 2), cy + y * scale * (height / 2)


def barrel_point(x: float, y: float, width: int, height: int, strength: float) -> tuple[float, float]:
    """Where barrel_maps puts the scene point (x, y): the picture radius r with r(1 + k r^2) / (1 + k) equal
    to the point's radius, found by Newton's method (a few steps: the map is smooth and monotonic)."""
    cx, cy = (width - 1) / 2, (height - 1) / 2
    nx, ny = (x - cx) / (width / 2), (y - cy) / (height / 2)
    source = math.hypot(nx, ny)
    if source == 0:
        return x, y
    radius = source
    for _ in range(8):
        radius -= (radius * (1 + strength * radius * radius) - source * (1 + strength)) / (
            1 + 3 * strength * radius * radius
        )
    scale = radius / source
    return cx + nx * scale * (width / 2), cy + ny * scale * (height / 2)


def rim_crossing(outside: tuple[float, float], inside: tuple[float, float], width: int, height: int, radius: float,
                 strength: float) -> tuple[float, float] | None:  # fmt: skip
    """Where the segment from `outside` to `inside` (scene points) crosses the scope's rim, taken as the picture
    radius `radius` (normalised, after barrel_maps' lens); None when `inside` is not inside it. The lens keeps
    directions from the centre and maps radii monotonically, so the crossing is the scene point at the source
    radius that barrel_point takes to `radius`: a quadratic along the segment."""
    source = radius * (1 + strength * radius * radius) / (1 + strength)
    cx, cy = (width - 1) / 2, (height - 1) / 2
    ax, ay = (outside[0] - cx) / (width / 2), (outside[1] - cy) / (height / 2)
    bx, by = (inside[0] - cx) / (width / 2) - ax, (inside[1] - cy) / (height / 2) - ay
    a, b, c = bx * bx + by * by, 2 * (ax * bx + ay * by), ax * ax + ay * ay - source * source
    if a == 0 or (ax + bx) ** 2 + (ay + by) ** 2 >= source * source:
        return None
    u = (-b - math.sqrt(max(b * b - 4 * a * c, 0.0))) / (2 * a)  # the first crossing from the outside
    u = min(max(u, 0.0), 1.0)
    return outside[0] + u * (inside[0] - outside[0]), outside[1] + u * (inside[1] - outside[1])


def motion_blur(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """The image smeared along (dx, dy) pixels, the camera's motion during one exposure."""
    length = math.hypot(dx, dy)
    if length < 1.5:
        return image
    size = int(math.ceil(length)) | 1
    centre = size // 2
    kernel = np.zeros((size, size), np.float32)
    half_x, half_y = dx / 2 * (size - 1) / length, dy / 2 * (size - 1) / length
    start = (int(round(centre - half_x)), int(round(centre - half_y)))
    end = (int(round(centre + half_x)), int(round(centre + half_y)))
    cv2.line(kernel, start, end, 1.0, 1)
    return cv2.filter2D(image, -1, kernel / kernel.sum(), borderType=cv2.BORDER_REFLECT)


def smoke(image: np.ndarray, density: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Surgical smoke: the image veiled towards `colour` (an image of the smoke's colour) by a per-pixel
    density in [0, 1]."""
    return cv2.blendLinear(image, colour, 1 - density, density)


def light_falloff(width: int, height: int, centre: tuple[float, float], reach: float) -> np.ndarray:
    """The scope's light source over a width x height grid: bright at `centre` (normalised -1..1), falling off
    with distance squared."""
    x = np.linspace(-1, 1, width, dtype=np.float32)[None, :] - centre[0]
    y = np.linspace(-1, 1, height, dtype=np.float32)[:, None] - centre[1]
    return np.clip(1.2 - (x * x + y * y) / reach, 0.12, 1.0)[..., None]


@dataclass(frozen=True)
class Instrument:
    """A laparoscopic grasper: a shaft entering through the field's rim, a joint, two jaws that open and close.

    `angle` is where it enters (radians around the field's centre); it sweeps by `sweep` and moves in and
    out at `speed` rad/s. `reach` below 0 puts the joint outside the field: the instrument leaves.
    """

    angle: float
    sweep: float
    speed: float
    phase: float
    jaw_speed: float
    aim: tuple[float, float]  # where it points, normalised -1..1 from the field's centre

    def pose(self, t: float, width: int, height: int) -> dict[str, tuple[float, float]]:
        """Pixel positions at time t (seconds): the shaft where it enters, the joint, each jaw's end, the tip."""
        angle = self.angle + self.sweep * math.sin(0.35 * self.speed * t + self.phase)
        entry = (width / 2 * (1 + 1.05 * math.cos(angle)), height / 2 * (1 + 1.05 * math.sin(angle)))
        target = (width / 2 * (1 + self.aim[0]), height / 2 * (1 + self.aim[1]))
        span = math.hypot(target[0] - entry[0], target[1] - entry[1])
        direction = ((target[0] - entry[0]) / span, (target[1] - entry[1]) / span)
        # In and out, with a hand tremor on top (a few pixels at 3-5 Hz).
        reach = 0.42 + 0.55 * math.sin(self.speed * t + self.phase) + 0.02 * math.sin(29 * t + self.phase)
        joint = (entry[0] + direction[0] * reach * span, entry[1] + direction[1] * reach * span)
        jaw = 0.1 * width
        opening = 0.08 + 0.4 * (0.5 + 0.5 * math.sin(self.jaw_speed * t + 2 * self.phase))
        ends = []
        for sign in (-1, 1):
            c, s = math.cos(sign * opening), math.sin(sign * opening)
            ends.append((joint[0] + jaw * (c * direction[0] - s * direction[1]),
                         joint[1] + jaw * (s * direction[0] + c * direction[1])))  # fmt: skip
        tip = (joint[0] + jaw * math.cos(opening) * direction[0], joint[1] + jaw * math.cos(opening) * direction[1])
        back = (entry[0] - direction[0] * 0.3 * span, entry[1] - direction[1] * 0.3 * span)
        return {"back": back, "entry": entry, "joint": joint, "jaw_a": ends[0], "jaw_b": ends[1], "tip": tip}


def draw_instrument(
    paint: np.ndarray, planes: tuple[tuple[np.ndarray, int], ...], pose: dict[str, tuple[float, float]], width: int
) -> None:
    """The instrument at `pose`: a metal shaft with a bright lengthwise stripe, a joint ring and dark jaws.

    `paint` gets the picture; each of `planes` gets its value (a class index) over the instrument's shape.
    """
    half = 0.04 * width
    back, joint = np.array(pose["back"]), np.array(pose["joint"])
    axis = joint - back
    normal = np.array([-axis[1], axis[0]]) / max(np.hypot(*axis), 1e-6)
    shaft = np.array([back + half * normal, joint + half * normal, joint - half * normal, back - half * normal])
    stripe = np.array([back + 0.5 * half * normal, joint + 0.5 * half * normal, joint + 0.1 * half * normal,
                       back + 0.1 * half * normal])  # fmt: skip
    jaw_width = max(2, int(round(0.55 * half)))
    ring = max(2, int(round(1.15 * half)))
    point = tuple(int(round(v)) for v in joint)
    cv2.fillPoly(paint, [np.round(shaft).astype(np.int32)], (150, 152, 158))
    cv2.fillPoly(paint, [np.round(stripe).astype(np.int32)], (235, 235, 240))
    for end in (pose["jaw_a"], pose["jaw_b"]):
        cv2.line(paint, point, tuple(int(round(v)) for v in end), (70, 70, 78), jaw_width)
    cv2.circle(paint, point, ring, (110, 110, 118), -1)
    for plane, value in planes:
        cv2.fillPoly(plane, [np.round(shaft).astype(np.int32)], value)
        for end in (pose["jaw_a"], pose["jaw_b"]):
            cv2.line(plane, point, tuple(int(round(v)) for v in end), value, jaw_width)
        cv2.circle(plane, point, ring, value, -1)

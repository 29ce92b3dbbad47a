"""Tiny datasets in the layouts real ones ship in, written by the tests: the same folders, file names and label
encodings (Cityscapes labelIds, VOC palette PNGs with their border, CamVid colour PNGs and class_dict.csv, ADE20K's
0-is-other ids, Kvasir-SEG's JPEG masks). Each returns the labels it wrote, in the layout's class ids (255:
ignored), so tests can compute the expected scores themselves."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

H, W = 48, 64


def blocks(ids: list[int]) -> np.ndarray:
    """A label of vertical bands, one per id."""
    label = np.zeros((H, W), np.uint8)
    for index, value in enumerate(ids):
        label[:, index * W // len(ids) : (index + 1) * W // len(ids)] = value
    return label


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (H, W, 3), np.uint8)


def cityscapes(root: Path, split: str = "val") -> list[np.ndarray]:
    """labelIds 7 (road), 26 (car), 0 (unlabeled: ignored), 23 (sky): train ids 0, 13, 255, 10."""
    expected = []
    for index, city in enumerate(("aachen", "bremen")):
        stem = f"{city}_000000_00001{index}"
        (root / "leftImg8bit" / split / city).mkdir(parents=True)
        (root / "gtFine" / split / city).mkdir(parents=True)
        cv2.imwrite(str(root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png"), image(index))
        cv2.imwrite(str(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png"), blocks([7, 26, 0, 23]))
        expected.append(blocks([0, 13, 255, 10]))
    return expected


VOC_COLOURS = {0: (0, 0, 0), 15: (192, 128, 128), 7: (128, 128, 128), 255: (224, 224, 192)}  # RGB


def voc(root: Path, split: str = "val") -> list[np.ndarray]:
    """Background, person (15), car (7) and the border (ignored), as the RGB colours of VOC's palette PNGs."""
    for folder in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / folder).mkdir(parents=True)
    expected, stems = [], []
    for index in range(2):
        stem = f"2007_00000{index}"
        ids = blocks([0, 15, 255, 7])
        colour = np.array([VOC_COLOURS[v] for v in range(256) if v in VOC_COLOURS], np.uint8)
        lookup = {v: i for i, v in enumerate(k for k in range(256) if k in VOC_COLOURS)}
        rgb = colour[np.vectorize(lookup.get)(ids)]
        cv2.imwrite(str(root / "JPEGImages" / f"{stem}.jpg"), image(index))
        cv2.imwrite(str(root / "SegmentationClass" / f"{stem}.png"), rgb[..., ::-1])
        expected.append(ids)
        stems.append(stem)
    (root / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return expected


CAMVID_TABLE = [("Road", (128, 64, 128)), ("Sky", (128, 128, 128)), ("Car", (64, 0, 128)), ("Void", (0, 0, 0))]


def camvid(root: Path, split: str = "val") -> list[np.ndarray]:
    """Colour labels STEM_L.png in VAL_labels/, their classes in class_dict.csv (Void ignored)."""
    (root / split).mkdir(parents=True)
    (root / f"{split}_labels").mkdir()
    (root / "class_dict.csv").write_text(
        "name,r,g,b\n" + "".join(f"{n},{r},{g},{b}\n" for n, (r, g, b) in CAMVID_TABLE)
    )
    expected = []
    for index in range(2):
        ids = blocks([0, 1, 3, 2])  # Road, Sky, Void, Car
        rgb = np.array([c for _, c in CAMVID_TABLE], np.uint8)[ids]
        cv2.imwrite(str(root / split / f"0001TP_00{index}.png"), image(index))
        cv2.imwrite(str(root / f"{split}_labels" / f"0001TP_00{index}_L.png"), rgb[..., ::-1])
        expected.append(np.where(ids == 3, 255, ids).astype(np.uint8))
    return expected


def ade20k(root: Path, split: str = "validation") -> list[np.ndarray]:
    """ids 1 (wall), 0 (other: ignored), 3 (sky), 13 (person): classes 0, 255, 2, 12."""
    (root / "images" / split).mkdir(parents=True)
    (root / "annotations" / split).mkdir(parents=True)
    expected = []
    for index in range(2):
        cv2.imwrite(str(root / "images" / split / f"ADE_val_0000000{index}.jpg"), image(index))
        cv2.imwrite(str(root / "annotations" / split / f"ADE_val_0000000{index}.png"), blocks([1, 0, 3, 13]))
        expected.append(blocks([0, 255, 2, 12]))
    return expected


def kvasir(root: Path) -> list[np.ndarray]:
    """Binary polyp masks saved as JPEG (edges blurred by the codec), white on black."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    expected = []
    for index in range(2):
        mask = np.zeros((H, W), np.uint8)
        mask[10:38, 16 + index * 8 : 48 + index * 8] = 255
        cv2.imwrite(str(root / "images" / f"cju0{index}.jpg"), image(index))
        cv2.imwrite(str(root / "masks" / f"cju0{index}.jpg"), cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR))
        expected.append(cv2.imread(str(root / "masks" / f"cju0{index}.jpg"), cv2.IMREAD_GRAYSCALE) >= 128)
    return [e.astype(np.uint8) for e in expected]

"""Datasets read in place, in the layouts they ship in: Cityscapes, CamVid, Pascal VOC 2012, ADE20K, Kvasir-SEG.

Each layout finds its (image, label) pairs for a split and decodes a label file into class ids of
its standard class set (presets.json), with IGNORE where the dataset marks pixels as not to be
scored (Cityscapes' non-train ids, VOC's border, ADE20K's "other", CamVid's void). A URI names the
layout (`cityscapes:///data/cityscapes?split=val`), or a folder is recognised by its structure.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

import cv2
import numpy as np

from edgeseg.classes import preset, presets_data
from edgeseg.data.folder import read_image
from edgeseg.errors import EdgesegError
from edgeseg.metrics import IGNORE
from edgeseg.redact import redact

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")


@dataclass(frozen=True)
class Layout:
    name: str
    default_split: str
    find: Callable[[Path, str], list[tuple[Path, Path]]]  # (root, split) -> sorted (image, label) pairs
    decode: Callable[[Path, Path], np.ndarray]  # (root, label path) -> class ids, IGNORE where unscored
    recognise: Callable[[Path], bool]
    classes: Callable[[Path], list[tuple[str, tuple[int, int, int]]]]  # this copy's (name, RGB): CamVid's may differ


def read_label(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    label = read_image(path, flags)
    if label is None:
        raise EdgesegError(f"cannot decode the label '{path}'")
    return label


def refuse_ids(path: Path, ids: np.ndarray, count: int) -> None:
    """A label id outside the class set (IGNORE apart) is an error naming the file and the id."""
    outside = ids[(ids >= count) & (ids != IGNORE)]
    if outside.size:
        raise EdgesegError(
            f"label '{path}' holds id {int(outside.max())}, outside the {count} classes of its dataset; is it the "
            "right layout or split?"
        )


def images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if folder.is_dir() else []


def require_folder(folder: Path, what: str) -> None:
    if not folder.is_dir():
        raise EdgesegError(f"'{folder}' does not exist: {what}")


def partner(image: Path, label: Path) -> Path:
    if not label.is_file():
        raise EdgesegError(f"image '{image}' has no label (expected '{label}')")
    return label


# -- Cityscapes ------------------------------------------------------------------------------------
def cityscapes_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    images_root = root / "leftImg8bit" / split
    require_folder(images_root, f"Cityscapes keeps split '{split}' in leftImg8bit/{split}/CITY/")
    pairs = []
    for image in sorted(images_root.glob("*/*_leftImg8bit.png")):
        stem = image.name[: -len("_leftImg8bit.png")]
        pairs.append(
            (image, partner(image, root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"))
        )
    return pairs


def cityscapes_decode(root: Path, path: Path) -> np.ndarray:
    table = np.full(256, -1, np.int32)
    for label_id, train_id in presets_data()["cityscapes_label_to_train_id"].items():
        table[int(label_id)] = train_id
    ids = read_label(path, cv2.IMREAD_GRAYSCALE)
    mapped = table[ids]
    if (mapped < 0).any():
        raise EdgesegError(f"label '{path}' holds id {int(ids[mapped < 0].max())}, which Cityscapes' label table lacks")
    return mapped.astype(np.uint8)


# -- Pascal VOC 2012 -------------------------------------------------------------------------------
VOC_BORDER = (224, 224, 192)  # RGB of the outline VOC draws round each object: not scored


def voc_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    listing = root / "ImageSets" / "Segmentation" / f"{split}.txt"
    if not listing.is_file():
        raise EdgesegError(f"'{listing}' does not exist: VOC lists each split in ImageSets/Segmentation/SPLIT.txt")
    pairs = []
    for stem in listing.read_text().split():
        image = root / "JPEGImages" / f"{stem}.jpg"
        if not image.is_file():
            raise EdgesegError(f"{listing.name} names '{stem}', but '{image}' does not exist")
        pairs.append((image, partner(image, root / "SegmentationClass" / f"{stem}.png")))
    return pairs


def palette_decode(path: Path, palette: list[tuple[int, int, int]], ignored: list[tuple[int, int, int]]) -> np.ndarray:
    """Class ids of a colour (or palette) PNG: each pixel's colour looked up in the palette."""
    label = read_label(path)
    if label.ndim == 2:  # already class indices (VOC's SegmentationClassAug, a palette PNG read as indices)
        return label.astype(np.uint8)
    rgb = label[..., 2::-1].astype(np.int32)
    code = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
    keys = {(r << 16) | (g << 8) | b: index for index, (r, g, b) in enumerate(palette)}
    keys.update({(r << 16) | (g << 8) | b: IGNORE for r, g, b in ignored})
    colours, inverse = np.unique(code, return_inverse=True)
    unknown = [c for c in colours.tolist() if c not in keys]
    if unknown:
        r, g, b = unknown[0] >> 16, (unknown[0] >> 8) & 255, unknown[0] & 255
        raise EdgesegError(f"label '{path}' has the colour ({r}, {g}, {b}), which is not in its dataset's palette")
    return np.array([keys[c] for c in colours.tolist()], np.uint8)[inverse].reshape(code.shape)


def voc_decode(root: Path, path: Path) -> np.ndarray:
    ids = palette_decode(path, preset("voc")[1], [VOC_BORDER])
    refuse_ids(path, ids, 21)
    return ids


# -- ADE20K (SceneParsing, 150 classes) ------------------------------------------------------------
ADE_SPLITS = {"train": "training", "val": "validation"}


def ade20k_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    split = ADE_SPLITS.get(split, split)
    require_folder(root / "images" / split, f"ADE20K keeps split '{split}' in images/{split}/")
    return [(image, partner(image, root / "annotations" / split / f"{image.stem}.png"))
            for image in images_in(root / "images" / split)]  # fmt: skip


def ade20k_decode(root: Path, path: Path) -> np.ndarray:
    ids = read_label(path, cv2.IMREAD_GRAYSCALE).astype(np.int32)
    refuse_ids(path, ids, 151)
    return np.where(ids == 0, IGNORE, ids - 1).astype(np.uint8)  # 0 is "other": not one of the 150


# -- CamVid ----------------------------------------------------------------------------------------
def camvid_table(root: Path) -> tuple[list[str], list[tuple[int, int, int]], list[tuple[int, int, int]]]:
    """The colour labels' classes: class_dict.csv when the copy has one (name,r,g,b), else the 32-class table; the
    void class is ignored."""
    table = root / "class_dict.csv"
    if table.is_file():
        with table.open(newline="") as handle:
            rows = [(row[0], tuple(int(v) for v in row[1:4])) for row in csv.reader(handle) if row and row[0] != "name"]
    else:
        data = presets_data()["camvid32"]
        rows = list(zip(data["names"], [tuple(c) for c in data["palette"]]))
    kept = [(name, colour) for name, colour in rows if name.lower() not in ("void", "unlabelled")]
    void = [colour for name, colour in rows if name.lower() in ("void", "unlabelled")]
    return [n for n, _ in kept], [c for _, c in kept], void


def camvid_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    images = images_in(root / split)
    if (root / f"{split}_labels").is_dir():  # colour labels, STEM_L.png
        return [(image, partner(image, root / f"{split}_labels" / f"{image.stem}_L.png")) for image in images]
    require_folder(root / f"{split}annot", f"CamVid keeps labels in {split}_labels/ (colour) or {split}annot/ (index)")
    return [(image, partner(image, root / f"{split}annot" / f"{image.stem}.png")) for image in images]


def camvid_decode(root: Path, path: Path) -> np.ndarray:
    if path.parent.name.endswith("annot"):  # SegNet's 11-class index PNGs: 11 is void
        ids = read_label(path, cv2.IMREAD_GRAYSCALE)
        ids = np.where(ids == 11, IGNORE, ids).astype(np.uint8)
        refuse_ids(path, ids, 11)
        return ids
    _, palette, void = camvid_table(root)
    return palette_decode(path, palette, void)


def camvid_classes(root: Path) -> list[tuple[str, tuple[int, int, int]]]:
    """Colour labels: the classes of their colour table; SegNet's index labels: the 11-class convention."""
    names, palette = camvid_table(root)[:2] if any(root.glob("*_labels")) else preset("camvid")
    return list(zip(names, palette))


def preset_classes(name: str) -> Callable[[Path], list[tuple[str, tuple[int, int, int]]]]:
    return lambda root: list(zip(*preset(name)))


# -- Kvasir-SEG --------------------------------------------------------------------------------------
def kvasir_pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    require_folder(root / "masks", "Kvasir-SEG keeps its masks in masks/, beside images/")
    masks = {p.stem: p for p in images_in(root / "masks")}
    pairs = []
    for image in images_in(root / "images"):
        if image.stem not in masks:
            raise EdgesegError(f"image '{image}' has no mask in '{root / 'masks'}' (same name, any image format)")
        pairs.append((image, masks[image.stem]))
    return pairs


def kvasir_decode(root: Path, path: Path) -> np.ndarray:
    # JPEG masks blur their edges: threshold at half, per pixel's brightest channel.
    mask = read_label(path)
    brightest = mask.max(axis=2) if mask.ndim == 3 else mask
    return (brightest >= 128).astype(np.uint8)


LAYOUTS = {
    "cityscapes": Layout("cityscapes", "val", cityscapes_pairs, cityscapes_decode,
                         lambda p: (p / "leftImg8bit").is_dir() and (p / "gtFine").is_dir(),
                         preset_classes("cityscapes")),
    "voc": Layout("voc", "val", voc_pairs, voc_decode,
                  lambda p: (p / "JPEGImages").is_dir() and (p / "SegmentationClass").is_dir(),
                  preset_classes("voc")),
    "ade20k": Layout("ade20k", "validation", ade20k_pairs, ade20k_decode,
                     lambda p: (p / "images").is_dir() and (p / "annotations").is_dir(),
                     preset_classes("ade20k")),
    "camvid": Layout("camvid", "val", camvid_pairs, camvid_decode,
                     lambda p: (p / "class_dict.csv").is_file() or any(p.glob("*annot")) or any(p.glob("*_labels")),
                     camvid_classes),
    "kvasir": Layout("kvasir", "", kvasir_pairs, kvasir_decode,
                     lambda p: (p / "images").is_dir() and (p / "masks").is_dir(),
                     preset_classes("kvasir")),
}  # fmt: skip


def recognise(root: Path) -> Layout | None:
    """The layout a folder is in, when its structure says."""
    return next((layout for layout in LAYOUTS.values() if layout.recognise(root)), None)


def dataset_location(uri: str) -> tuple[Layout, Path, str]:
    """LAYOUT:///path?split=NAME (split: the layout's validation split by default) as (layout, root, split)."""
    scheme, rest = uri.split("://", 1)
    path, _, query = rest.partition("?")
    options = dict(parse_qsl(query))
    unknown = set(options) - {"split"}
    if unknown:
        raise EdgesegError(f"'{redact(uri)}': unknown option {sorted(unknown)[0]}; a dataset URI takes split=NAME")
    layout = LAYOUTS[scheme.lower()]
    return layout, Path(path), options.get("split", layout.default_split)


def is_dataset_uri(uri: str) -> bool:
    return "://" in uri and uri.split("://", 1)[0].lower() in LAYOUTS

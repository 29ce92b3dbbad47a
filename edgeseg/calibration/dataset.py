"""Calibration and held-out frames from any finite source, preprocessed exactly as the runtime does.

Frames are spread evenly across the source (a video's whole length, not its first seconds); the
held-out frames for fidelity are spread over the frames calibration did not use. The result is
cached in the bundle under .cache/, keyed by the source's content fingerprint, and verified by
its sha256 when loaded.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeseg.bundle import InputContract
from edgeseg.errors import EdgesegError
from edgeseg.fileio import atomic_path
from edgeseg.redact import redact
from edgeseg.runtime.sources import CaptureSource, open_source
from edgeseg.runtime.tensors import frames_to_input

MIN_RECOMMENDED = 100


@dataclass
class HeldOut:
    """The frames fidelity is measured on, with their labels when the source has them."""

    frames: list[np.ndarray]  # BGR
    labels: list[np.ndarray] | None  # class maps
    instances: list[np.ndarray] | None = None  # instance-id planes (0: no instance)
    label_names: list[str] | None = None  # what each label id means, where the source says
    keypoints: list[np.ndarray] | None = None  # (objects, K, 3) keypoint labels, where the source has them


@dataclass
class CalibrationSet:
    tensors: np.ndarray  # [count, ...] graph inputs, one frame each
    held_out: HeldOut
    sha256: str  # of the calibration tensors: the manifest's data hash
    source_size: tuple[int, int]  # (height, width) of the source frames
    cached: bool = False


def spread(available: list[int], count: int) -> list[int]:
    """`count` indices spread evenly over `available`, first and last included when possible."""
    if count >= len(available):
        return list(available)
    return [available[round(i * (len(available) - 1) / max(count - 1, 1))] for i in range(count)]


def fingerprint(uri: str) -> str:
    """What the cached frames depend on: the content of the files for folders and datasets (a file rewritten with
    the same size and time is still seen), size and time for a video, the URI for synthetic scenes."""
    from edgeseg.data.layouts import dataset_location, is_dataset_uri

    if is_dataset_uri(uri):
        return json.dumps([uri, folder_digest(dataset_location(uri)[1])])
    path = Path(uri[len("file://") :] if uri.startswith("file://") else uri)
    if "://" in uri and not uri.startswith("file://"):
        return uri
    if path.is_dir():
        return folder_digest(path)
    if path.is_file():
        return f"{path.resolve()}:{path.stat().st_size}:{path.stat().st_mtime_ns}"
    return uri


def folder_digest(folder: Path) -> str:
    """sha256 over every file's path and bytes: reading them costs a fraction of decoding the images."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()) if folder.is_dir() else []:
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def exact_length(uri: str) -> int | None:
    """Frames a finite source really yields: a video container's frame count is only a hint, so count them."""
    source = open_source(uri)
    try:
        if isinstance(source, CaptureSource):
            frames = 0
            while source.capture.grab():
                frames += 1
            return frames
        return source.length
    finally:
        source.close()


def with_enough_frames(uri: str, needed: int) -> str:
    """A synthetic scene renders as many frames as asked (300 per seed by default): without its own `frames=`,
    it is asked for what calibration needs, so `--data synthetic://driving` works with the default counts."""
    if not uri.startswith("synthetic://") or "frames=" in uri or needed <= 300:
        return uri
    return f"{uri}{'&' if '?' in uri else '?'}frames={needed}"


def read_frames(uri: str, count: int, eval_count: int) -> tuple[list[np.ndarray], HeldOut]:
    """The calibration frames and the held-out ones, in one pass over the source."""
    uri = with_enough_frames(uri, count + eval_count)
    source = open_source(uri)
    try:
        if source.live:
            raise EdgesegError(f"'{redact(uri)}' is a live stream; calibrate on a file, a folder or synthetic://")
        total = exact_length(uri)
        if total is None:  # unknown length: read it all once
            frames = list(source)
            total = len(frames)
        else:
            frames = None
        needed = count + eval_count
        if total < needed:
            raise EdgesegError(
                f"'{redact(uri)}' yields {total} frames but calibration needs {needed} ({count} to calibrate + "
                f"{eval_count} held out); lower --count/--eval-count or give more frames"
            )
        calibration_indices = spread(list(range(total)), count)
        taken = set(calibration_indices)
        eval_indices = set(spread([i for i in range(total) if i not in taken], eval_count))
        calibration, held_out = [], []
        iterator = enumerate(frames) if frames is not None else ((f.index, f) for f in source)
        last = max(taken | eval_indices)
        for index, frame in iterator:
            if index in taken:
                calibration.append(frame.image)
            elif index in eval_indices:
                held_out.append(frame)
            if index >= last:
                break
    finally:
        source.close()
    if len(calibration) + len(held_out) < needed:
        # A container's frame count is a hint; a damaged or short file yields fewer.
        raise EdgesegError(
            f"'{redact(uri)}' yielded only {len(calibration) + len(held_out)} decodable frames of the {needed} "
            "needed; lower --count/--eval-count or use a longer source"
        )
    labels = [frame.label for frame in held_out]
    instances = [frame.instances for frame in held_out]
    return calibration, HeldOut(
        [frame.image for frame in held_out],
        labels if all(label is not None for label in labels) else None,
        instances if held_out and all(plane is not None for plane in instances) else None,
        source.label_names,
        [frame.keypoints for frame in held_out] if source.keypoint_schema is not None else None,
    )


def build_calibration_set(
    uri: str, count: int, eval_count: int, contract: InputContract, cache_dir: Path | None
) -> CalibrationSet:
    if count < MIN_RECOMMENDED:
        print(
            f"edgeseg: warning: --count {count} is below {MIN_RECOMMENDED}; INT8 ranges from few frames are fragile",
            file=sys.stderr,
        )
    key_text = json.dumps(
        [
            uri,
            fingerprint(uri),
            count,
            eval_count,
            contract.size,
            contract.fused_preprocess,
            contract.color_order,
            contract.mean,
            contract.std,
        ]
    )
    key = hashlib.sha256(key_text.encode()).hexdigest()[:24]
    cache = cache_dir / f"calibration-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        loaded = load_cached(cache)
        if loaded is not None:
            return loaded
    calibration, held_out = read_frames(uri, count, eval_count)
    first = frames_to_input(calibration[:1], contract)
    tensors = np.empty((len(calibration), *first.shape[1:]), first.dtype)  # filled in place: no list of copies
    for index, frame in enumerate(calibration):
        tensors[index] = frames_to_input([frame], contract)[0]
    result = CalibrationSet(
        tensors, held_out, hashlib.sha256(np.ascontiguousarray(tensors).data).hexdigest(), calibration[0].shape[:2]
    )
    if cache is not None:
        save_cached(cache, result)
    return result


def save_cached(path: Path, data: CalibrationSet) -> None:
    held_out = data.held_out
    if held_out.frames and not same_shape(held_out.frames):
        return  # held-out frames of mixed sizes: not worth caching
    arrays = {
        "tensors": data.tensors,
        "eval_frames": np.stack(held_out.frames) if held_out.frames else np.empty((0, 1, 1, 3), np.uint8),
        "sha256": np.array(data.sha256),
        "source_size": np.array(data.source_size),
    }
    if held_out.labels:
        arrays["eval_labels"] = np.stack(held_out.labels)
    if held_out.instances:
        arrays["eval_instances"] = np.stack(held_out.instances)
    if held_out.label_names is not None:
        arrays["label_names"] = np.array(held_out.label_names)
    if held_out.keypoints:  # a frame's objects vary in number: one array, and each frame's count
        arrays["eval_keypoints"] = np.concatenate(held_out.keypoints)
        arrays["eval_keypoint_counts"] = np.array([len(points) for points in held_out.keypoints])
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            np.savez(handle, **arrays)


def load_cached(path: Path) -> CalibrationSet | None:
    """The cached set, or None when it is unreadable or its content no longer matches its hash."""
    try:
        with np.load(path) as archive:
            tensors = archive["tensors"]
            digest = str(archive["sha256"])
            frames = list(archive["eval_frames"])
            labels = list(archive["eval_labels"]) if "eval_labels" in archive.files else None
            instances = list(archive["eval_instances"]) if "eval_instances" in archive.files else None
            names = [str(n) for n in archive["label_names"]] if "label_names" in archive.files else None
            size = tuple(int(v) for v in archive["source_size"])
            keypoints = None
            if "eval_keypoints" in archive.files:
                ends = np.cumsum(archive["eval_keypoint_counts"])
                keypoints = np.split(archive["eval_keypoints"], ends[:-1]) if len(ends) else []
    except (OSError, ValueError, KeyError):
        return None
    if hashlib.sha256(np.ascontiguousarray(tensors).data).hexdigest() != digest:
        return None
    return CalibrationSet(tensors, HeldOut(frames, labels, instances, names, keypoints), digest, size, cached=True)  # type: ignore[arg-type]


def same_shape(arrays: list[np.ndarray]) -> bool:
    return len({a.shape for a in arrays}) == 1

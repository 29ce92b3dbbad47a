"""The bundle: a directory with manifest.json and the artifacts it lists. Every stage reads and writes one.

manifest.json (schema 1):
  schema, edgeseg_version, created
  model:    name, source, family, parameters, options
  classes:  [{name, color: [r, g, b]}]
  input:    name, size [h, w], batch (int, or null when dynamic), layout, dtype, color_order,
            mean, std, fused_preprocess, dynamic_size
  output:   name, kind (class_map | logits | instances | keypoints), dtype, fused_argmax (keypoints: decoder fused)
  instances (instance bundles): the outputs' names, max_detections, mask_size
  keypoints (keypoint bundles): names, skeleton [[name, name]], peaks, stride, min_confidence, decoder
  artifacts: [{path, kind (onnx | engine), precision, target, sha256, files {extra path: sha256},
               tools {name: version}, created, ...stage-specific fields}]
  parity, calibration, fidelity: figures written by the stage that measured them
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from edgeseg.errors import EdgesegError
from edgeseg.fileio import sha256_file, write_text_atomic
from edgeseg.onnx_files import MalformedONNX, external_data_locations
from edgeseg.redact import redact_text
from edgeseg.tables import printable
from edgeseg.version import __version__

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".lock"  # held by the stage writing the bundle
PRECISIONS = ("fp32", "fp16", "int8")


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


@dataclass
class ClassInfo:
    name: str
    color: tuple[int, int, int]  # RGB, as people write colours


# RGB normalisation of ImageNet: what most segmentation backbones were trained with, so the default.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class InputContract:
    name: str
    size: tuple[int, int]  # (height, width) the graph was exported at
    batch: int | None  # None: dynamic batch
    layout: str  # NHWC (fused uint8 frames) or NCHW (float tensors)
    dtype: str  # uint8 or float32
    color_order: str  # channel order the graph input expects: BGR or RGB
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    fused_preprocess: bool
    dynamic_size: bool = False


@dataclass
class OutputContract:
    name: str
    kind: str  # class_map (uint8 [N,H,W]) or logits (float [N,C,H,W])
    dtype: str
    fused_argmax: bool


@dataclass
class Artifact:
    path: str
    kind: str  # onnx | engine
    precision: str  # fp32 | fp16 | int8
    sha256: str
    target: str = "any"  # any | tensorrt | cpu: which runtime the artifact is shaped for
    files: dict[str, str] = field(default_factory=dict)  # companion files (external weights) -> sha256
    tools: dict[str, str] = field(default_factory=dict)
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    size: int | None = None  # bytes when written: a file of another size is refused before it is hashed


# What a manifest must hold, checked when a bundle is loaded, so that a damaged or hostile one is one line,
# not an exception deep in a stage. Each rule: (key, test, what it must be); `?` marks an optional key.
def _is_int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _triple(test: Any) -> Any:
    return lambda v: isinstance(v, list) and len(v) == 3 and all(test(x) for x in v)


def _is_string(value: Any) -> bool:
    return isinstance(value, str)


OUTPUT_KINDS = ("class_map", "logits", "instances", "keypoints")
INPUT_RULES = [
    ("name", _is_string, "a string"),
    ("size", lambda v: isinstance(v, list) and len(v) == 2 and all(_is_int(x, 1, 16384) for x in v), "[height, width]"),
    ("batch", lambda v: v is None or _is_int(v, 1, 4096), "null or a batch size"),
    ("layout", lambda v: v in ("NHWC", "NCHW"), "NHWC or NCHW"),
    ("dtype", lambda v: v in ("uint8", "float32"), "uint8 or float32"),
    ("color_order", lambda v: v in ("BGR", "RGB"), "BGR or RGB"),
    ("mean", _triple(_is_number), "three numbers"),
    ("std", _triple(lambda x: _is_number(x) and x > 0), "three numbers above 0"),
    ("fused_preprocess", lambda v: isinstance(v, bool), "true or false"),
    ("dynamic_size?", lambda v: isinstance(v, bool), "true or false"),
]
OUTPUT_RULES = [
    ("name", _is_string, "a string"),
    ("kind", lambda v: v in OUTPUT_KINDS, ", ".join(OUTPUT_KINDS)),
    ("dtype", _is_string, "a string"),
    ("fused_argmax", lambda v: isinstance(v, bool), "true or false"),
]
CLASS_RULES = [
    ("name", _is_string, "a string"),
    ("color", _triple(lambda x: _is_int(x, 0, 255)), "[R, G, B] in 0-255"),
    ("category_id?", lambda v: _is_int(v, 0, 1 << 31), "a COCO category id"),
]
ARTIFACT_RULES = [
    ("path", lambda v: isinstance(v, str) and v != "", "a path"),
    ("kind", lambda v: v in ("onnx", "engine"), "onnx or engine"),
    ("precision", lambda v: v in PRECISIONS, " or ".join(PRECISIONS)),
    ("sha256", lambda v: isinstance(v, str) and len(v) == 64, "a sha256"),
    ("target?", lambda v: v in ("any", "tensorrt", "cpu"), "any, tensorrt or cpu"),
    (
        "files?",
        lambda v: isinstance(v, dict) and all(isinstance(k, str) and isinstance(x, str) for k, x in v.items()),
        "{path: sha256}",
    ),
    ("tools?", lambda v: isinstance(v, dict), "an object"),
    ("created?", _is_string, "a string"),
    ("extra?", lambda v: isinstance(v, dict), "an object"),
    ("size?", lambda v: v is None or _is_int(v, 0, 1 << 50), "a byte count"),
]


def _section_problem(section: Any, rules: list[tuple[str, Any, str]], where: str) -> str | None:
    if not isinstance(section, dict):
        return f"'{where}' must be an object"
    known = {key.rstrip("?") for key, _, _ in rules}
    unknown = sorted(str(k) for k in section if k not in known)
    if unknown:
        return f"'{where}' has an unknown field '{unknown[0]}'"
    for key, test, wanted in rules:
        name = key.rstrip("?")
        if name not in section:
            if key.endswith("?"):
                continue
            return f"'{where}' has no '{name}'"
        if not test(section[name]):
            return f"'{where}.{name}' must be {wanted}"
    return None


KEYPOINT_RULES = [
    ("names", lambda v: isinstance(v, list) and 1 <= len(v) <= 256 and all(_is_string(n) for n in v)
     and len(set(v)) == len(v), "a list of 1 to 256 distinct names"),  # fmt: skip
    ("skeleton", lambda v: isinstance(v, list) and all(isinstance(b, list) and len(b) == 2 and all(_is_string(n)
     for n in b) for b in v), "a list of [name, name] pairs"),  # fmt: skip
    ("peaks", lambda v: _is_int(v, 1, 64), "a count of peaks per keypoint"),
    ("stride", lambda v: _is_int(v, 1, 64), "the heatmaps' stride"),
    ("min_confidence", lambda v: _is_number(v) and 0 <= v <= 1, "a number in 0-1"),
    ("decoder?", _is_string, "a string"),
]


def keypoints_problem(section: Any) -> str | None:
    """What is wrong with a keypoint bundle's `keypoints` section: its shape, or a bone naming no keypoint."""
    if section is None:
        return "a keypoints bundle needs a 'keypoints' section (names, skeleton, peaks, stride, min_confidence)"
    problem = _section_problem(section, KEYPOINT_RULES, "keypoints")
    if problem:
        return problem
    unknown = [name for bone in section["skeleton"] for name in bone if name not in section["names"]]
    if unknown:
        return f"'keypoints.skeleton' names '{printable(unknown[0])}', which is not one of keypoints.names"
    return None


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """The first thing wrong with a manifest's shape, or None."""
    if not isinstance(manifest["model"], dict):
        return "'model' must be an object"
    for key in ("parity", "calibration", "fidelity", "instances", "keypoints"):
        if key in manifest and not isinstance(manifest[key], dict):
            return f"'{key}' must be an object"
    classes, artifacts = manifest["classes"], manifest["artifacts"]
    if not isinstance(classes, list) or not 1 <= len(classes) <= 256:
        return "'classes' must be a list of 1 to 256 classes"
    if not isinstance(artifacts, list):
        return "'artifacts' must be a list"
    sections = [(manifest["input"], INPUT_RULES, "input"), (manifest["output"], OUTPUT_RULES, "output")]
    sections += [(c, CLASS_RULES, f"classes[{i}]") for i, c in enumerate(classes)]
    sections += [(a, ARTIFACT_RULES, f"artifacts[{i}]") for i, a in enumerate(artifacts)]
    problem = next((p for section, rules, where in sections if (p := _section_problem(section, rules, where))), None)
    if problem is None and manifest["output"]["kind"] == "keypoints":
        problem = keypoints_problem(manifest.get("keypoints"))
    return problem


@contextlib.contextmanager
def writing(root: Path, stage: str) -> Iterator[None]:
    """One writing stage at a time on a bundle (calibrate, build): a second is refused, not interleaved.
    Readers (run, info, eval) take no lock: the manifest is replaced atomically and lists an artifact only
    once its file is complete, so they see the bundle as it was before or after a stage, never between."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no advisory locks; one stage at a time is then the user's to keep
        fcntl = None
    if fcntl is None or not Path(root).is_dir():  # no bundle there: the stage's own load says so
        yield
        return
    with open(Path(root) / LOCK_NAME, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another stage"
            raise EdgesegError(
                f"bundle {root} is being written by {printable(holder)}; wait for it to finish, then run this again"
            ) from None
        handle.truncate(0)
        handle.write(f"edgeseg {stage} (pid {os.getpid()})")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)  # a finished stage leaves no holder's name a reader could take for a running one
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


def _redacted(value: Any) -> Any:
    """`value` with every URI in its strings redacted (user-info, token and password values as ***)."""
    if isinstance(value, str):
        return redact_text(value) if "://" in value else value
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


def _tuple(value: Any) -> tuple:
    return tuple(value) if value is not None else None  # type: ignore[return-value]


class Bundle:
    """A bundle directory: its manifest, typed accessors, artifact lookup with integrity checks."""

    def __init__(self, root: Path, manifest: dict[str, Any]):
        self.root = Path(root)
        self.manifest = manifest
        self._verified: set[str] = set()
        self._said: set[str] = set()  # notes and warnings already printed: a verb that selects again says each once
        # True while a verb picks artifacts the user did not name (bench's --precision all): a variant below its bar
        # is then measured without 'running ... as asked' (its row shows what it measured).
        self.precision_not_named = False

    # -- loading and saving -------------------------------------------------------------
    @classmethod
    def load(cls, root: str | Path) -> Bundle:
        root = Path(root)
        manifest_path = root / MANIFEST_NAME
        if not root.is_dir():
            raise EdgesegError(f"bundle '{root}' does not exist; create one with: edgeseg export MODEL -o {root}")
        if not manifest_path.is_file():
            raise EdgesegError(
                f"'{root}' is not a bundle (no {MANIFEST_NAME}); create one with: edgeseg export MODEL -o {root}"
            )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise EdgesegError(f"cannot read {manifest_path}: {exc}; re-export the bundle") from None
        if not isinstance(manifest, dict):
            raise EdgesegError(f"{manifest_path} is not a JSON object; re-export the bundle")
        schema = manifest.get("schema")
        if schema != SCHEMA_VERSION:
            raise EdgesegError(
                f"{manifest_path} has schema version {schema!r}; edgeseg {__version__} reads version {SCHEMA_VERSION}: "
                "re-export the bundle or use the edgeseg version that wrote it"
            )
        for key in ("model", "classes", "input", "output", "artifacts"):
            if key not in manifest:
                raise EdgesegError(f"{manifest_path} has no '{key}' section; re-export the bundle")
        problem = manifest_problem(manifest)
        if problem:
            raise EdgesegError(f"{manifest_path}: {problem}; re-export the bundle (or restore its manifest)")
        return cls(root, manifest)

    @classmethod
    def create(
        cls,
        root: Path,
        model: dict[str, Any],
        classes: list[ClassInfo],
        input_contract: InputContract,
        output_contract: OutputContract,
    ) -> Bundle:
        manifest = {
            "schema": SCHEMA_VERSION,
            "edgeseg_version": __version__,
            "created": utc_now(),
            "model": model,
            "classes": [asdict(c) for c in classes],
            "input": asdict(input_contract),
            "output": asdict(output_contract),
            "artifacts": [],
        }
        return cls(root, manifest)

    def save(self) -> None:
        # A manifest travels with the bundle: a URI it records (a calibration source) keeps no password or token.
        write_text_atomic(self.root / MANIFEST_NAME, json.dumps(_redacted(self.manifest), indent=2) + "\n")

    # -- typed views --------------------------------------------------------------------
    @property
    def classes(self) -> list[ClassInfo]:
        return [ClassInfo(c["name"], _tuple(c["color"])) for c in self.manifest["classes"]]

    @property
    def is_instances(self) -> bool:
        """An instance segmentation bundle (boxes, classes and masks per object), not a class map per pixel."""
        return self.manifest["output"]["kind"] == "instances"

    @property
    def is_keypoints(self) -> bool:
        """A keypoint bundle (peaks or heatmaps per keypoint), not a class map per pixel."""
        return self.manifest["output"]["kind"] == "keypoints"

    @property
    def is_semantic(self) -> bool:
        return not (self.is_instances or self.is_keypoints)

    @property
    def kind(self) -> str:
        """semantic, instances or keypoints: which measures, verbs and runtime paths apply."""
        return "instances" if self.is_instances else "keypoints" if self.is_keypoints else "semantic"

    @property
    def input(self) -> InputContract:
        data = dict(self.manifest["input"])
        for key in ("size", "mean", "std"):
            data[key] = _tuple(data[key])
        return InputContract(**data)

    @property
    def output(self) -> OutputContract:
        return OutputContract(**self.manifest["output"])

    @property
    def artifacts(self) -> list[Artifact]:
        return [Artifact(**a) for a in self.manifest["artifacts"]]

    # -- artifacts ------------------------------------------------------------------------
    def inside(self, relative: str) -> Path:
        """The path of a bundle member; a manifest entry that points outside the bundle is refused."""
        path = (self.root / relative).resolve()
        if path != self.root.resolve() and self.root.resolve() not in path.parents:
            raise EdgesegError(f"manifest entry '{relative}' points outside the bundle {self.root}; refusing to use it")
        return path

    def add_artifact(self, artifact: Artifact) -> None:
        """List an artifact already written into the bundle, replacing one with the same path."""
        kept = [a for a in self.manifest["artifacts"] if a["path"] != artifact.path]
        self.manifest["artifacts"] = kept + [asdict(artifact)]

    def artifact_path(self, artifact: Artifact) -> Path:
        """The artifact's path, after checking it and its companion files against their sha256, and an ONNX's
        external-data locations against the bundle (before any of those files is read)."""
        main = self.inside(artifact.path)
        if artifact.size is not None and artifact.path not in self._verified and main.is_file():
            actual = main.stat().st_size
            if actual != artifact.size:
                raise EdgesegError(
                    f"'{artifact.path}' is {actual} bytes but the manifest says {artifact.size}; refusing to read it "
                    "(re-run the stage that made it)"
                )
        path = self._checked_member(artifact.path, artifact.sha256)
        if artifact.kind == "onnx":
            self._check_external_data(artifact, path)
        for relative, expected in artifact.files.items():
            self._checked_member(relative, expected)
        return path

    def _checked_member(self, relative: str, expected: str) -> Path:
        path = self.inside(relative)
        if relative in self._verified:
            return path
        if not path.is_file():
            raise EdgesegError(
                f"bundle {self.root} lists '{relative}' but the file is missing; re-run the stage that made it"
            )
        if sha256_file(path) != expected:
            raise EdgesegError(
                f"'{path}' does not match its sha256 in the manifest (file changed or damaged); "
                "re-run the stage that made it"
            )
        self._verified.add(relative)
        return path

    def _check_external_data(self, artifact: Artifact, path: Path) -> None:
        """An ONNX may name other files for its weights; each must be a checked member of this bundle."""
        try:
            locations = external_data_locations(path)
        except (MalformedONNX, OSError) as exc:
            raise EdgesegError(
                f"'{artifact.path}' is not a readable ONNX file ({exc}); re-run the stage that made it"
            ) from None
        for location in locations:
            relative = PurePosixPath(artifact.path).parent / location
            if PurePosixPath(location).is_absolute() or ".." in PurePosixPath(location).parts:
                raise EdgesegError(
                    f"'{artifact.path}' reads external data from '{printable(location)}', outside the bundle; "
                    "refusing to load it"
                )
            self.inside(str(relative))  # a link that leads out of the bundle is refused too
            if str(relative) not in artifact.files:
                raise EdgesegError(
                    f"'{artifact.path}' reads external data from '{printable(location)}', which the manifest does not "
                    "list with a sha256; refusing to load it"
                )

    def measured_as(self, artifact: Artifact) -> Artifact:
        """The artifact whose calibrate figures stand for `artifact`: an engine is judged by the ONNX it was built
        from (calibrate measured that graph; build only compiles it), anything else by itself."""
        source = artifact.extra.get("source") if artifact.kind == "engine" else None
        return next((a for a in self.artifacts if a.path == source and a.kind == "onnx"), artifact)

    def passed_over_because(self, artifact: Artifact, on_cpu: bool = False) -> str | None:
        """Why `--precision best` does not run this variant, or None: its measured fidelity missed its bar
        (calibrate's `accepted`), it is an INT8 that buys nothing over FP32 (int8_buys_nothing), or, where the run
        is on ONNX Runtime's CPU provider (`on_cpu`), an FP16 no faster than FP32 there (fp16_no_faster_on_cpu)."""
        measured = self.measured_as(artifact)
        if measured.extra.get("accepted") is False:
            return _missed_bar(measured)
        return int8_buys_nothing(measured) or (fp16_no_faster_on_cpu(measured) if on_cpu else None)

    def _passed_over(self, artifact: Artifact, on_cpu: bool) -> bool:
        """A variant 'best' never runs (passed_over_because), said on stderr."""
        reason = self.passed_over_because(artifact, on_cpu)
        if reason is None:
            return False
        self._say(f"edgeseg: note: --precision best passes over {artifact.path} ({reason})")
        return True

    def _say(self, line: str) -> None:
        if line not in self._said:
            self._said.add(line)
            print(line, file=sys.stderr)

    def select(
        self,
        kind: str,
        precision: str = "fp32",
        targets: tuple[str, ...] = ("any",),
        prefer: Any = None,
        accept: Any = None,
        on_cpu: bool = False,
    ) -> Artifact:
        """Pick the artifact for a runtime.

        `precision` is fp32/fp16/int8 or 'best' (BEST_PRECISION says what it picks; passed_over_because says what it
        leaves out); `targets` lists the artifact shapes this runtime can use, most preferred first.
        `prefer(artifact) -> bool` ranks matching artifacts first (an engine built for this GPU and TensorRT among
        several); `accept(artifact) -> bool` leaves out the rest (engines for another device); `on_cpu`: the
        runtime is ONNX Runtime's CPU provider.
        """
        candidates = [
            a for a in self.artifacts if a.kind == kind and a.target in targets and (accept is None or accept(a))
        ]
        if prefer is not None:
            candidates.sort(key=lambda a: not prefer(a))
        wanted = ("int8", "fp16", "fp32") if precision == "best" else (precision,)
        for name in wanted:
            matches = sorted(
                (a for a in candidates if a.precision == name), key=lambda a: targets.index(a.target)
            )  # stable: keeps `prefer` order
            if precision == "best":
                matches = [a for a in matches if not self._passed_over(a, on_cpu)]
            if matches:
                measured = self.measured_as(matches[0])
                if measured.extra.get("accepted") is False and not self.precision_not_named:
                    # asked for by name: run it, and say what it costs
                    self._say(f"edgeseg: warning: running {matches[0].path} as asked: {_missed_bar(measured)}")
                return matches[0]
        have = sorted({a.precision for a in candidates}) or ["none"]
        hint = "run: edgeseg calibrate" if kind == "onnx" else "run: edgeseg build"
        raise EdgesegError(
            f"bundle {self.root} has no {precision} {kind} artifact for this backend (has: {', '.join(have)}); "
            f"{hint} {self.root}"
        )


# What `--precision best` picks, in the words every --help and report uses (one place decides the wording).
BEST_PRECISION = (
    "best (the lowest precision that met its accuracy bar and buys something over FP32: an INT8 mostly left in float "
    "or measured no faster, and an FP16 no faster on a CPU, are passed over)"
)
# An INT8 with more than this share of its quantizable nodes left in float (to meet its accuracy bar) is FP32 under
# another name: TensorRT runs the float part at FP32 and adds reformatting between the islands of INT8.
MOSTLY_FLOAT_SHARE = 0.5


def int8_buys_nothing(artifact: Artifact) -> str | None:
    """Why an INT8 variant gains nothing over FP32, in a phrase, or None: most of its quantizable nodes were left in
    float to meet the accuracy bar, or calibrate measured it no faster than FP32 on the runtime it is shaped for (the
    CPU form, on ONNX Runtime's CPU provider). Nodes the CPU form leaves float because float ran faster there are not
    counted against it: its measured latency already says what they bought."""
    if artifact.precision != "int8":
        return None
    extra = artifact.extra
    total = extra.get("quantized_node_count")
    float_layers, for_speed = extra.get("float_layers"), extra.get("float_for_speed") or []
    if _is_int(total, 1, 1 << 31) and isinstance(float_layers, list) and isinstance(for_speed, list):
        kept = len([name for name in float_layers if name not in for_speed])
        share = kept / total
    else:  # a manifest without the counts: its recorded share
        kept, share = None, extra.get("float_layer_share")
    if _is_number(share) and share > MOSTLY_FLOAT_SHARE:
        counted = f"{kept} of {total}" if kept is not None else f"{share:.0%} of the"
        return f"INT8 buys nothing here: {counted} quantizable nodes stay float to meet the accuracy bar"
    ratio = extra.get("cpu_latency_ratio")
    if artifact.target == "cpu" and _is_number(ratio) and ratio >= 1.0:
        return f"INT8 buys nothing here: calibrate measured it at {ratio:.2f}x FP32's latency on ONNX Runtime's CPU"
    return None


def fp16_no_faster_on_cpu(artifact: Artifact) -> str | None:
    """Why an FP16 variant gains nothing on ONNX Runtime's CPU provider, whose kernels run FP16 at FP32's speed or
    slower (1.03x measured), or None: calibrate did not measure it faster than FP32 there."""
    if artifact.precision != "fp16" or artifact.extra.get("cpu_latency_ratio", 1.0) < 1.0:
        return None
    return "FP16 is no faster than FP32 on ONNX Runtime's CPU provider"


def _missed_bar(artifact: Artifact) -> str:
    """What a variant below its accuracy bar measured, and the bar."""
    fidelity = artifact.extra.get("fidelity") or {}
    if "mask_ap_change" in fidelity:
        figure = f"mask AP {100 * fidelity['mask_ap_change']:+.2f} points"
    elif "pck05_change" in fidelity:
        figure = f"PCK@0.05 {100 * fidelity['pck05_change']:+.2f} points"
    else:
        figure = f"agreement {fidelity['agreement']:.2%}"
    return f"{figure}, below {artifact.extra.get('accuracy_bar', 'its accuracy bar')}"

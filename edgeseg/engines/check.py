"""`edgeseg check`: will each ONNX artifact parse and build on a given TensorRT, answered offline on any machine.

The rules are data (tensorrt_onnx_rules.json, with the onnx-tensorrt tag each came from): the operator
table per version (operator, supported types, restrictions), the opset range, and the rules the parser's
source enforces beyond the table (UINT8 only through a Cast at the network's edge, and none at all on 8.2,
symmetric INT8 Q/DQ, TopK's K as an initializer on 8.2 and 8.5, Resize modes and 8.2's constant scales, INT64 at
the network's edge on 8.x, DLA layers: Orin's, and Xavier's on 8.2). A
problem means the parser or builder will refuse the graph; a warning means it builds with a cost (a
layer falls back from the DLA to the GPU, INT64 cast down to INT32).

--jetpack names a JetPack release and checks every TensorRT it ships: 4 (4.6: 8.2), 5 (5.1: 8.5), 6.0 (8.6),
6.1 and 6.2 (10.3), 6 (both 8.6 and 10.3), 7 (10.13). Without --tensorrt or --jetpack the check covers JetPack
5.1, 6.1/6.2 and 7: 8.6 (JetPack 6.0) is left out there because every rule checked here is at least as strict
on 8.5 (tests/test_check.py proves it on the tables), so a graph that builds on 8.5 builds on 8.6.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeseg.bundle import Bundle
from edgeseg.errors import EdgesegError, require

RULES_FILE = Path(__file__).with_name("tensorrt_onnx_rules.json")
DEFAULT_JETPACKS = ("5", "6.1", "7")
# Below this opset a graph may be meant for JetPack 4.6 (TensorRT 8.2 parses up to 13): export and calibrate check it.
JETPACK_4_OPSET = 13

# ONNX TensorProto element types, in the operator tables' spelling.
ONNX_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 6: "INT32", 7: "INT64", 9: "BOOL", 10: "FP16", 11: "DOUBLE",
              16: "BF16", 17: "FP8", 18: "FP8", 19: "FP8", 20: "FP8", 22: "INT4", 23: "FP4"}  # fmt: skip
FLOATS = ("FP32", "FP16")
# Operators whose first input is not the data the table's types describe.
TYPE_FREE = {"Shape", "Size", "Constant", "ConstantOfShape", "Cast", "CastLike", "QuantizeLinear", "DequantizeLinear",
             "Identity", "Range", "NonZero"}  # fmt: skip


@functools.lru_cache(maxsize=None)
def rules() -> dict[str, Any]:
    return json.loads(RULES_FILE.read_text())


@dataclass
class Finding:
    message: str
    node: str = ""  # "name (Op)", empty for graph-wide findings
    fix: str = ""  # what to do about it, where edgeseg knows

    def line(self) -> str:
        found = f"node {self.node}: {self.message}" if self.node else self.message
        return f"{found}; {self.fix}" if self.fix else found


@dataclass
class Verdict:
    artifact: str
    precision: str
    target: str
    problems: list[Finding] = field(default_factory=list)
    warnings: list[Finding] = field(default_factory=list)

    @property
    def builds(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        return target_label(self.target)


def target_label(target: str) -> str:
    jetpack = rules()["targets"][target]["jetpack"]
    return f"TensorRT {target}" + (f" (JetPack {jetpack})" if jetpack else "")


def resolve_targets(tensorrt: list[str] | None, jetpack: list[str] | None) -> list[str]:
    """TensorRT versions from --tensorrt and --jetpack (a JetPack release may ship two); JetPack 5.1, 6.1/6.2 and 7
    when neither is given."""
    known, jetpacks = rules()["targets"], rules()["jetpack"]
    chosen = []
    for version in tensorrt or []:
        if version not in known:
            raise EdgesegError(f"--tensorrt {version}: choose one of {', '.join(known)}")
        chosen.append(version)
    for release in jetpack or ([] if tensorrt else list(DEFAULT_JETPACKS)):
        if release not in jetpacks:
            raise EdgesegError(f"--jetpack {release}: choose one of {', '.join(jetpacks)}")
        chosen += jetpacks[release]
    return list(dict.fromkeys(chosen))


class GraphFacts:
    """What the rules need to know about a graph: tensor types, constants, the network's edge."""

    def __init__(self, model: Any):
        onnx = require("onnx", "calibrate")
        inferred = onnx.shape_inference.infer_shapes(model)
        graph = inferred.graph
        self.graph = graph
        self.types: dict[str, str] = {}
        for value in [*graph.input, *graph.output, *graph.value_info]:
            self.types[value.name] = ONNX_TYPES.get(value.type.tensor_type.elem_type, "OTHER")
        self.constants = {t.name: t for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                for attribute in node.attribute:
                    if attribute.name == "value":
                        self.constants[node.output[0]] = attribute.t
        for name, tensor in self.constants.items():
            self.types[name] = ONNX_TYPES.get(tensor.data_type, "OTHER")
        self.inputs = {v.name for v in graph.input if v.name not in self.constants}
        self.outputs = {v.name for v in graph.output}
        self.opset = next((o.version for o in inferred.opset_import if o.domain in ("", "ai.onnx")), 0)

    def array(self, name: str) -> Any:
        from onnx import numpy_helper

        return numpy_helper.to_array(self.constants[name]) if name in self.constants else None

    def dims(self, name: str) -> list[int | None]:
        for value in [*self.graph.input, *self.graph.output]:
            if value.name == name:
                return [d.dim_value if d.HasField("dim_value") else None for d in value.type.tensor_type.shape.dim]
        return []


def attributes(node: Any) -> dict[str, Any]:
    from onnx import helper

    values = {}
    for attribute in node.attribute:
        value = helper.get_attribute_value(attribute)
        values[attribute.name] = value.decode() if isinstance(value, bytes) else value
    return values


def check_model(model: Any, target: str, precision: str = "fp32", dla: bool = False) -> Verdict:
    return check_facts(GraphFacts(model), target, precision, dla)


def check_facts(facts: GraphFacts, target: str, precision: str = "fp32", dla: bool = False) -> Verdict:
    """The verdict for one target, from a graph's facts (shape inference runs once per graph, not per target)."""
    rule = rules()["targets"][target]
    table = rules()["operator_tables"][rule["table"]]
    verdict = Verdict("", precision, target)
    low, high = rule["opset"]
    if not low <= facts.opset <= high:
        fix = min(max(facts.opset, low), high)
        message = (
            f"opset {facts.opset}: TensorRT {target}'s parser reads opset {low} to {high}; export with --opset {fix}"
        )
        # The only finding: the operator table and the rules below are for the opsets this parser reads.
        verdict.problems.append(Finding(message))
        return verdict
    _check_edges(facts, rule, target, verdict)
    for index, node in enumerate(facts.graph.node):
        where = f"{node.name or '#' + str(index)} ({node.op_type})"
        for message in _node_problems(node, facts, rule, table, target):
            verdict.problems.append(Finding(message, where, _node_fix(node, table, rule)))
        if dla:
            for message in _dla_warnings(node, rule):
                verdict.warnings.append(Finding(message, where))
    if dla:
        _check_dla(facts, rule, target, precision, verdict)
    return verdict


def _check_edges(facts: GraphFacts, rule: dict, target: str, verdict: Verdict) -> None:
    if not rule.get("uint8", True):
        for name in sorted(facts.inputs | facts.outputs):
            if facts.types.get(name) != "UINT8":
                continue
            edge = "input" if name in facts.inputs else "output"
            flag = "--no-fuse-preprocess" if edge == "input" else "--no-fuse-argmax"
            message = (
                f"network {edge} '{name}' is UINT8, which TensorRT {target} has no type for (UINT8 arrived in 8.5)"
            )
            verdict.problems.append(Finding(f"{message}; export with {flag} for a float {edge}"))
    if not rule["int64"]:
        return
    for name in sorted(facts.inputs | facts.outputs):
        if facts.types.get(name) == "INT64":
            edge = "input" if name in facts.inputs else "output"
            message = f"network {edge} '{name}' is INT64, which TensorRT {target} has no type for; cast it to INT32"
            verdict.problems.append(Finding(message + " in the graph"))
    if any(t == "INT64" for n, t in facts.types.items() if n not in facts.inputs | facts.outputs):
        verdict.warnings.append(Finding(f"INT64 tensors inside the graph are {rule['int64'].split(';')[0]}"))


def _node_problems(node: Any, facts: GraphFacts, rule: dict, table: dict, target: str) -> list[str]:
    if node.domain not in ("", "ai.onnx"):
        return [f"operator domain '{node.domain}' is not ONNX's: it needs a TensorRT plugin registered for it"]
    entry = table.get(node.op_type)
    if entry is None or entry.get("supported") is False:
        return [f"{node.op_type} is not supported by TensorRT {target}'s ONNX parser ({rule['table']})"]
    problems = _uint8_problems(node, facts) if rule.get("uint8", True) else _no_uint8_problems(node, facts, target)
    first = facts.types.get(node.input[0]) if node.input else None
    if node.op_type not in TYPE_FREE and first and first != "UINT8":
        seen = "INT32" if first == "INT64" and rule["int64"] else first  # 8.x casts INT64 down before the layer
        if seen not in entry["types"]:
            problems.append(f"input type {first}: TensorRT {target} runs {node.op_type} on {', '.join(entry['types'])}")
    problems += _quantize_problems(node, facts, rule, target)
    if node.op_type == "TopK" and rule["topk_k_initializer"] and node.input[1] not in facts.constants:
        problems.append(f"K must be an initializer on TensorRT {target} (it is computed here)")
    if node.op_type == "Resize":
        problems += _resize_problems(node)
        if rule.get("resize_scales_initializer"):
            problems += _resize_scales_problems(node, facts, target)
    return problems


def _node_fix(node: Any, table: dict, rule: dict) -> str:
    """What makes an unsupported operator go away, where edgeseg knows: an op that entered ONNX at opset N
    (LayerNormalization at 17, GroupNormalization at 18, Gelu at 20) is written by the exporter as the primitive ops
    it is made of at opset N - 1, which this parser reads."""
    entry = table.get(node.op_type)
    if node.domain not in ("", "ai.onnx") or (entry is not None and entry.get("supported") is not False):
        return ""
    entered = _opset_entered(node.op_type)
    low, _ = rule["opset"]
    if entered is None or entered - 1 < max(low, 11):
        return ""
    return f"export with --opset {entered - 1}, where the exporter writes {node.op_type} as the ops it is made of"


@functools.lru_cache(maxsize=None)
def _opset_entered(op_type: str) -> int | None:
    """The opset at which an ONNX operator first appeared; None when ONNX has no such operator."""
    from onnx import defs

    versions = [s.since_version for s in defs.get_all_schemas_with_history() if s.name == op_type and not s.domain]
    return min(versions) if versions else None


def _no_uint8_problems(node: Any, facts: GraphFacts, target: str) -> list[str]:
    """UINT8 inside the graph where TensorRT has no UINT8 at all (the network's edges are said once, in
    _check_edges)."""
    edges = facts.inputs | facts.outputs
    names = [n for n in [*node.input, *node.output] if n and n not in edges and facts.types.get(n) == "UINT8"]
    return [f"UINT8 tensor {names[0]}: TensorRT {target} has no UINT8 type"] if names else []


def _resize_scales_problems(node: Any, facts: GraphFacts, target: str) -> list[str]:
    """8.2 resizes by sizes (a tensor) or by scales that are an initializer, linear only on the innermost 3 axes."""
    if len(node.input) > 3 and node.input[3]:
        return []
    scales = node.input[2] if len(node.input) > 2 else ""
    if not scales:
        return []
    if scales not in facts.constants:
        return [f"Resize scales must be an initializer on TensorRT {target} (they are computed here)"]
    values = facts.array(scales).reshape(-1)
    if attributes(node).get("mode", "nearest") == "linear" and any(v != 1 for v in values[:-3]):
        return [f"TensorRT {target} resizes linearly only the innermost 3 dimensions (scales {values.tolist()})"]
    return []


def _uint8_problems(node: Any, facts: GraphFacts) -> list[str]:
    names = [n for n in [*node.input, *node.output] if n and facts.types.get(n) == "UINT8"]
    if not names:
        return []
    if node.op_type != "Cast":
        return [f"UINT8 tensor {names[0]}: TensorRT takes UINT8 only into or out of a Cast at the network's edge"]
    source, target = facts.types.get(node.input[0]), facts.types.get(node.output[0])
    problems = []
    if source == "UINT8" and (target not in FLOATS or node.input[0] not in facts.inputs):
        problems.append(f"Cast from UINT8 must read a network input and give FP32/FP16 (gives {target})")
    if target == "UINT8" and (source not in FLOATS or node.output[0] not in facts.outputs):
        problems.append(f"Cast to UINT8 must take FP32/FP16 (takes {source}) and be a network output")
    return problems


def _quantize_problems(node: Any, facts: GraphFacts, rule: dict, target: str) -> list[str]:
    if node.op_type not in ("QuantizeLinear", "DequantizeLinear"):
        return []
    problems = []
    if node.op_type == "DequantizeLinear" and rule["dequantize_needs_zero_point"] and len(node.input) < 3:
        problems.append(f"TensorRT {target} needs DequantizeLinear's zero point input (all zeros)")
    if len(node.input) > 2 and node.input[2]:
        zero_type = facts.types.get(node.input[2])
        if zero_type not in rule["quantized_types"]:
            kinds = ", ".join(rule["quantized_types"])
            problems.append(f"zero point type {zero_type}: TensorRT {target} quantizes to {kinds} only")
        zero = facts.array(node.input[2])
        if zero is not None and zero.any():
            problems.append("zero point is not 0: TensorRT supports symmetric quantization only")
    scale = facts.array(node.input[1])
    if scale is not None and (scale <= 0).any():
        problems.append("scale must be positive")
    per_channel = scale is not None and scale.size > 1
    if node.op_type == "QuantizeLinear" and per_channel and node.input[0] not in facts.constants:
        problems.append("per-channel scales on an activation: TensorRT quantizes activations per tensor only")
    return problems


def _resize_problems(node: Any) -> list[str]:
    allowed = rules()["resize"]
    values = attributes(node)
    defaults = {"mode": "nearest", "coordinate_transformation_mode": "half_pixel", "nearest_mode": "round_prefer_floor",
                "keep_aspect_ratio_policy": "stretch", "antialias": 0}  # fmt: skip
    problems = []
    for name, default in defaults.items():
        value = values.get(name, default)
        if name == "nearest_mode" and values.get("mode", "nearest") != "nearest":
            continue
        if value not in allowed[name]:
            problems.append(f"Resize {name}={value!r}: TensorRT takes {', '.join(map(str, allowed[name]))}")
    return problems


def _dla_warnings(node: Any, rule: dict) -> list[str]:
    dla = rules()[rule.get("dla_rules", "dla")]
    layers = dla["operators"]
    if node.op_type not in layers:
        return [f"{node.op_type} cannot run on the DLA: this layer falls back to the GPU"]
    values = attributes(node)
    if node.op_type == "Conv":
        kernel, strides = values.get("kernel_shape", []), values.get("strides", [1])
        if any(k > 32 for k in kernel) or any(s > 8 for s in strides):
            return ["convolution outside the DLA's kernel 1-32 / stride 1-8: falls back to the GPU"]
    if node.op_type == "ConvTranspose" and (values.get("group", 1) > 1 or any(values.get("pads", [0]))):
        return ["deconvolution with groups or padding cannot run on the DLA: falls back to the GPU"]
    if node.op_type == "Concat" and values.get("axis") not in (1, -3):
        return ["Concat on a non-channel axis cannot run on the DLA: falls back to the GPU"]
    return []


def _check_dla(facts: GraphFacts, rule: dict, target: str, precision: str, verdict: Verdict) -> None:
    dla = rules()[rule.get("dla_rules", "dla")]
    if not rule["dla"]:
        verdict.problems.append(Finding(f"TensorRT {target} does not support the DLA"))
    if precision not in dla["precisions"]:
        fix = "check the FP16 or INT8 graph that edgeseg calibrate adds"
        verdict.problems.append(Finding(f"the DLA runs FP16 and INT8 only; this artifact is {precision}", fix=fix))
    for name in sorted(facts.inputs | facts.outputs):
        dims = facts.dims(name)
        if None in dims:
            verdict.problems.append(Finding(f"'{name}' has a dynamic dimension; the DLA needs fixed shapes"))
        elif any(d > dla["max_dim"] for d in dims[1:]):
            verdict.problems.append(Finding(f"'{name}' has a dimension over the DLA's {dla['max_dim']}"))


def check_file(path: Path, targets: list[str], precision: str = "fp32", dla: bool = False) -> list[Verdict]:
    onnx = require("onnx", "calibrate")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and others on a damaged file
        raise EdgesegError(f"{path} is not a readable ONNX file ({type(exc).__name__}); re-export it") from None
    facts = GraphFacts(model)
    verdicts = []
    for target in targets:
        verdict = check_facts(facts, target, precision, dla)
        verdict.artifact = path.name
        verdicts.append(verdict)
    return verdicts


def check_bundle(bundle_dir: Path, targets: list[str], dla: bool = False) -> list[Verdict]:
    """Every ONNX artifact TensorRT builds from (target tensorrt or any), against every target version."""
    bundle = Bundle.load(bundle_dir)
    verdicts = []
    for artifact in bundle.artifacts:
        if artifact.kind != "onnx" or artifact.target not in ("tensorrt", "any"):
            continue
        for verdict in check_file(bundle.artifact_path(artifact), targets, artifact.precision, dla):
            verdict.artifact = artifact.path
            verdicts.append(verdict)
    return verdicts


def grouped(findings: list[Finding]) -> list[str]:
    """One line per rule: the first node it fails on and how many more, then the fix; graph-wide findings as
    they are."""
    rules_seen: dict[tuple[str, str], list[Finding]] = {}
    for finding in findings:
        rules_seen.setdefault((finding.message, finding.fix), []).append(finding)
    lines = []
    for (message, fix), found in rules_seen.items():
        nodes = [f.node for f in found if f.node]
        where = ""
        if len(nodes) == 1:
            where = f"node {nodes[0]}: "
        elif nodes:
            where = f"{len(nodes)} nodes, the first {nodes[0]}: "
        lines.append(f"{where}{message}" + (f"; {fix}" if fix else ""))
    return lines


def report_lines(verdicts: list[Verdict]) -> list[str]:
    """One block per TensorRT version and outcome: the artifacts that share it on one line, then one line per rule
    (a rule failing on many nodes of many artifacts is still one line)."""
    blocks: dict[tuple[str, tuple[str, ...], tuple[str, ...]], list[Verdict]] = {}
    for verdict in verdicts:
        key = (verdict.target, tuple(grouped(verdict.problems)), tuple(grouped(verdict.warnings)))
        blocks.setdefault(key, []).append(verdict)
    lines = []
    for (_, problems, warnings), shared in blocks.items():
        head = f"{', '.join(f'{v.artifact} ({v.precision})' for v in shared)} on {shared[0].label}"
        if len(problems) == 1 and not warnings:
            lines.append(f"{head}: will not build: {problems[0]}")
            continue
        count = len(problems)
        state = f"will not build ({count} problem{'s' * (count != 1)})" if count else "builds"
        lines.append(f"{head}: {state}")
        lines += [f"  {line}" for line in problems]
        lines += [f"  warning: {line}" for line in warnings]
    return lines


def one_line_verdict(bundle_dir: Path) -> str:
    """What export and calibrate print: will the bundle's graphs build on JetPack 5.1, 6.1/6.2 and 7, and on 4.6 for
    a graph exported at an opset TensorRT 8.2 reads (what --opset 13 is for)."""
    targets = resolve_targets(None, None)
    try:
        opset = Bundle.load(bundle_dir).select("onnx", "fp32", targets=("any",)).extra.get("opset")
    except EdgesegError:  # no FP32 graph to read it from: the bundle's own graphs are checked as they are
        opset = None
    if isinstance(opset, int) and opset <= JETPACK_4_OPSET:
        targets = resolve_targets(None, ["4"]) + targets
    verdicts = check_bundle(bundle_dir, targets)
    failing = [v for v in verdicts if not v.builds]
    if not failing:
        labels = ", ".join(dict.fromkeys(v.label for v in verdicts))
        return f"TensorRT check: every graph builds on {labels}"
    first = failing[0]
    others = {v.artifact for v in failing} - {first.artifact}
    labels = list(dict.fromkeys(v.label for v in failing if v.label != first.label))
    also = []
    if labels:
        also.append(f"nor on {', '.join(labels)}")
    if others:
        also.append(f"{len(others)} more artifact{'s' * (len(others) != 1)} fail{'s' * (len(others) == 1)}")
    more = f" ({'; '.join(also)})" if also else ""
    return (
        f"TensorRT check: {first.artifact} will not build on {first.label}: {grouped(first.problems)[0]}{more}; "
        f"details: edgeseg check {bundle_dir}"
    )

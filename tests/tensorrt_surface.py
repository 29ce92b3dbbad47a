"""What edgeseg touches of TensorRT's Python API, recorded, and checked against NVIDIA's real bindings.

`Recorder` wraps the TensorRT test double while edgeseg's builder, backend and doctor run against it,
and notes every attribute read, written, probed for (hasattr) or called, with the class it belongs to
and the call's positional count and keyword names. The list is therefore what the code does, not a list
someone keeps. `check_records` then takes each entry to the real module of the same version: the
attribute exists (or is absent where the code took it to be), enum values are equal, a written
attribute is a settable property, a called one is a method whose pybind11 signature takes those
arguments. `check_double` holds the double to the real classes the same way.

Run as a script in a subprocess whose PYTHONPATH and LD_LIBRARY_PATH point at one version's bindings
(tests/real_tensorrt.py): `python tests/tensorrt_surface.py VERSION RECORDS.json` prints a JSON report.
"""

from __future__ import annotations

import enum
import inspect
import json
import re
import sys
from pathlib import Path
from typing import Any

DOUBLE_MODULE = "tensorrt_double"


class Recorder:
    """A transparent proxy that notes every use of the object it wraps (and of objects it hands out)."""

    def __init__(self, target: Any, records: list[dict], owner: str | None = None):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_records", records)
        object.__setattr__(self, "_owner", owner or type(target).__name__)

    def _note(self, name: str, op: str, **extra: Any) -> None:
        entry = {"owner": self._owner, "name": name, "op": op, **extra}
        if entry not in self._records:
            self._records.append(entry)

    def __getattr__(self, name: str) -> Any:
        try:
            value = getattr(self._target, name)
        except AttributeError:
            self._note(name, "absent")
            raise
        if isinstance(value, type):
            self._note(name, "class")
            return ClassRecorder(value, self._records, owner=value.__name__)
        if isinstance(value, enum.Enum):
            self._note(name, "get", value=int(value))
            return value
        if callable(value):
            return CallRecorder(value, self._records, self._owner, name, unbound=False)
        self._note(name, "get")
        return wrap(value, self._records)

    def __setattr__(self, name: str, value: Any) -> None:
        self._note(name, "set")
        setattr(self._target, name, unwrap(value))


class ClassRecorder(Recorder):
    """A class of the double: constructing it, and its class attributes (enum members), are noted too."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self._note("__init__", "call", positional=len(args), keywords=sorted(kwargs))
        return wrap(self._target(*unwrap_all(args), **unwrap_all(kwargs)), self._records)

    def __getattribute__(self, name: str) -> Any:
        if name == "__init__":  # `Base.__init__(self)` in a subclass means the double's, not this proxy's
            return ClassRecorder.__getattr__(self, name)
        return object.__getattribute__(self, name)

    def __mro_entries__(self, bases: tuple) -> tuple:
        return (self._target,)  # `class Monitor(trt.IProgressMonitor)` subclasses the double's class itself

    def __getattr__(self, name: str) -> Any:
        value = super().__getattr__(name)
        if isinstance(value, CallRecorder):
            object.__setattr__(value, "unbound", True)  # Class.method(self, ...): self is passed explicitly
        return value


class CallRecorder:
    def __init__(self, function: Any, records: list[dict], owner: str, name: str, unbound: bool):
        self.function, self.records, self.owner, self.name, self.unbound = function, records, owner, name, unbound

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        entry = {"owner": self.owner, "name": self.name, "op": "call", "positional": len(args) - self.unbound,
                 "keywords": sorted(kwargs)}  # fmt: skip
        if entry not in self.records:
            self.records.append(entry)
        return wrap(self.function(*unwrap_all(args), **unwrap_all(kwargs)), self.records)


def wrap(value: Any, records: list[dict]) -> Any:
    if type(value).__module__ == DOUBLE_MODULE and not isinstance(value, enum.Enum):
        return Recorder(value, records)
    if isinstance(value, list) and value and type(value[0]).__module__ == DOUBLE_MODULE:
        return [wrap(v, records) for v in value]
    return value


def unwrap(value: Any) -> Any:
    return object.__getattribute__(value, "_target") if isinstance(value, Recorder) else value


def unwrap_all(values: Any) -> Any:
    if isinstance(values, dict):
        return {k: unwrap(v) for k, v in values.items()}
    return [unwrap(v) for v in values]


# -- the real side -----------------------------------------------------------------------------------
def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        if char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current.strip())
    return parts


def overloads(function: Any, name: str) -> list[list[tuple[str, bool]]]:
    """Each overload's parameters (name, has default), self left out, from the pybind11 docstring."""
    if inspect.isfunction(function):  # a pure-Python function of the package (nptype)
        return [[(p.name, p.default is not p.empty) for p in inspect.signature(function).parameters.values()]]
    found = []
    for line in (function.__doc__ or "").splitlines():
        match = re.match(rf"^\s*(?:\d+\.\s+)?{re.escape(name)}\((.*)\)\s*(?:->.*)?$", line)
        if not match or match.group(1).strip() == "*args, **kwargs":
            continue
        params = []
        for part in split_top_level(match.group(1)):
            param = part.split(":")[0].split("=")[0].strip()
            params.append((param, "=" in part))
        found.append([p for p in params if p[0] != "self"])
    return found


def fits(params: list[tuple[str, bool]], positional: int, keywords: list[str]) -> bool:
    names = [p for p, _ in params]
    if positional > len(params) or any(k not in names[positional:] for k in keywords):
        return False
    given = set(names[:positional]) | set(keywords)
    return all(name in given or has_default for name, has_default in params)


def real_owner(trt: Any, owner: str) -> Any:
    return trt if owner == "tensorrt" else getattr(trt, owner, None)


def check_record(trt: Any, record: dict) -> str | None:
    """One line when the real module disagrees with what the code did, else None."""
    owner, name, op = record["owner"], record["name"], record["op"]
    where = f"{owner}.{name}"
    holder = real_owner(trt, owner)
    if holder is None:
        return f"{owner}: no such class in the real module"
    present = hasattr(holder, name)
    if op == "absent":
        return f"{where}: the code found it absent, the real module has it" if present else None
    if not present:
        return f"{where}: {op} by the code, absent from the real module"
    real = getattr(holder, name)
    if op == "class":
        return None if isinstance(real, type) else f"{where}: a class in the double, {type(real).__name__} here"
    if op == "get":
        if "value" in record and int(real) != record["value"]:
            return f"{where}: value {record['value']} in the double, {int(real)} in the real module"
        if owner != "tensorrt" and "value" not in record and not isinstance(real, property):
            return f"{where}: read as a property, but it is a {type(real).__name__} in the real module"
        return None
    if op == "set":
        if not isinstance(real, property) or real.fset is None:
            return f"{where}: written by the code, but not a settable property in the real module"
        return None
    if name == "__init__":
        real = holder.__init__
    elif isinstance(real, property):
        return f"{where}: called by the code, but a property in the real module"
    signatures = overloads(real, name)
    if not signatures:
        return f"{where}: no signature found in its docstring"
    if not any(fits(params, record["positional"], record["keywords"]) for params in signatures):
        shown = " | ".join("(" + ", ".join(p for p, _ in params) + ")" for params in signatures)
        return (
            f"{where}: called with {record['positional']} positional and keywords {record['keywords']}, which "
            f"fits no real signature {shown}"
        )
    return None


def check_records(trt: Any, records: list[dict]) -> list[str]:
    return [problem for record in records if (problem := check_record(trt, record))]


def check_double(trt: Any, double: Any) -> list[str]:
    """Every name the double has exists in the real module, of the same kind, with the same parameter names and
    enum values; and the double's version string is the real one."""
    problems = []
    if double.__version__ != trt.__version__:
        problems.append(f"__version__: double {double.__version__!r}, real {trt.__version__!r}")
    for name in ("init_libnvinfer_plugins", "nptype"):
        problems += _compare_method(trt, "tensorrt", name, getattr(double, name), getattr(trt, name, None))
    for name, value in vars(double).items():
        if not isinstance(value, type):
            continue
        real = getattr(trt, name, None)
        if real is None:
            problems.append(f"{name}: in the double, not in the real module")
        elif issubclass(value, enum.Enum):
            problems += _compare_enum(name, value, real)
        else:
            problems += _compare_class(trt, name, value, real)
    return problems


def _compare_enum(name: str, double: type, real: Any) -> list[str]:
    problems = []
    for member, value in double.__members__.items():
        if not hasattr(real, member):
            problems.append(f"{name}.{member}: in the double, not in the real enum")
        elif int(getattr(real, member)) != int(value):
            problems.append(f"{name}.{member}: {int(value)} in the double, {int(getattr(real, member))} real")
    return problems


def _compare_class(trt: Any, name: str, double: type, real: type) -> list[str]:
    problems = []
    for member, value in vars(double).items():
        if member.startswith("_") and member != "__init__":
            continue
        if isinstance(value, enum.Enum):  # Logger.WARNING and its siblings
            if int(getattr(real, member, -1)) != int(value):
                problems.append(f"{name}.{member}: {int(value)} in the double, {getattr(real, member, None)} real")
            continue
        real_value = real.__init__ if member == "__init__" else getattr(real, member, None)
        if real_value is None:
            problems.append(f"{name}.{member}: in the double, not in the real class")
        elif isinstance(value, property) != isinstance(real_value, property):
            kinds = ["a property" if isinstance(v, property) else "a method" for v in (value, real_value)]
            problems.append(f"{name}.{member}: {kinds[0]} in the double, {kinds[1]} in the real class")
        elif isinstance(value, property):
            if value.fset is not None and real_value.fset is None:
                problems.append(f"{name}.{member}: settable in the double, read-only in the real class")
        else:
            problems += _compare_method(trt, name, member, value, real_value)
    return problems


def _compare_method(trt: Any, owner: str, name: str, double: Any, real: Any) -> list[str]:
    if real is None:
        return [f"{owner}.{name}: in the double, not in the real module"]
    mine = [p for p in inspect.signature(double).parameters if p != "self"]
    theirs = overloads(real, name)
    if mine and theirs and not any([p for p, _ in params] == mine for params in theirs):
        shown = " | ".join("(" + ", ".join(p for p, _ in params) + ")" for params in theirs)
        return [f"{owner}.{name}: parameters ({', '.join(mine)}) in the double, {shown} in the real bindings"]
    return []


def main(version: str, records_path: str) -> int:
    import tensorrt

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from tensorrt_double import RecordingTensorRT

    records = json.loads(Path(records_path).read_text())
    report = {
        "version": tensorrt.__version__,
        "checked": len(records),
        "code": check_records(tensorrt, records),
        "double": check_double(tensorrt, RecordingTensorRT(version)),
    }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))

"""NVIDIA's real TensorRT Python bindings, importable on a machine without TensorRT's native libraries.

The bindings are real binary wheels on PyPI (about 1 MB each); the native libraries are not installable
here. The bindings' shared object needs a few plain C entry points from libnvinfer, libnvinfer_plugin and
libnvonnxparser (and libnvparsers on 8.x): a C stub compiled into those sonames returns NULL from every
one, so `import tensorrt` succeeds, the whole Python API (classes, enum values, pybind11 signatures) is
NVIDIA's own, and any object TensorRT's native code must create (Builder, Runtime) fails exactly as on a
machine where CUDA did not initialise: `TypeError: ... factory function returned nullptr`.

Wheels and stubs live in .cache/tensorrt/pyX.Y/VERSION/ (never committed: NVIDIA's licence), one tree per
Python, since the bindings are built for one. Run `python tests/real_tensorrt.py` to fetch and build them
all for that Python (make test does); the tests skip a version, with the reason, when its wheel could not be
fetched. EDGESEG_TENSORRT_VERSIONS (comma-separated) narrows the versions, as the JetPack stand-ins do to
the TensorRT their JetPack ships.

JetPack 5's TensorRT 8.5.2 is not on PyPI; 8.6.1 is the nearest 8.x and stands for the 8.x branch.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"
CACHE = ROOT / ".cache" / "tensorrt" / f"py{PYTHON}"

# version -> pip requirement; 10.3 is JetPack 6.1/6.2's TensorRT, 10.13 JetPack 7.0's, 10.16 the last 10.x.
WHEELS = {
    "8.6.1": "tensorrt-bindings==8.6.1",
    "10.3.0": "tensorrt-cu12-bindings==10.3.0",
    "10.13.3.9": "tensorrt-cu12-bindings==10.13.3.9",
    "10.16.1.11": "tensorrt-cu12-bindings==10.16.1.11",
    "11.4.0.106": "tensorrt-cu12-bindings==11.4.0.106",
}
if os.environ.get("EDGESEG_TENSORRT_VERSIONS"):
    WHEELS = {v: WHEELS[v] for v in os.environ["EDGESEG_TENSORRT_VERSIONS"].split(",")}

# Every native symbol the bindings import, across the five versions (nm -D --undefined-only tensorrt.so).
# The last four are libnvparsers' C++ entry points (8.x only); their mangled names are valid C names.
STUB_SOURCE = """
#include <stddef.h>
void *createInferBuilder_INTERNAL(void *l, int v) { return NULL; }
void *createInferRefitter_INTERNAL(void *e, void *l, int v) { return NULL; }
void *createInferRuntime_INTERNAL(void *l, int v) { return NULL; }
void *createNvOnnxParser_INTERNAL(void *n, void *l, int v) { return NULL; }
void *createNvOnnxParserRefitter_INTERNAL(void *r, void *l, int v) { return NULL; }
void *getBuilderPluginRegistry(int c) { return NULL; }
void *getPluginRegistry(void) { return NULL; }
int getNvOnnxParserVersion(void) { return 0; }
int getInferLibVersion(void) { return 0; }
int initLibNvInferPlugins(void *l, const char *n) { return 1; }
void *_ZN11nvuffparser15createUffParserEv(void) { return NULL; }
void _ZN11nvuffparser8FieldMapC1EPKcPKvNS_9FieldTypeEi(void *t, const char *n, const void *d, int f, int l) {}
void *_ZN14nvcaffeparser117createCaffeParserEv(void) { return NULL; }
void _ZN14nvcaffeparser123shutdownProtobufLibraryEv(void) {}
"""


def major(version: str) -> int:
    return int(version.split(".")[0])


def folder(version: str) -> Path:
    return CACHE / version


def ready(version: str) -> bool:
    return (folder(version) / ".ready").is_file()


def skip_reason(version: str) -> str | None:
    """None when the version is ready; else why it is not (the last fetch's error, or that none ran)."""
    if ready(version):
        return None
    failure = folder(version) / ".failed"
    if failure.is_file():
        return f"TensorRT {version} bindings could not be prepared: {failure.read_text().strip()[-300:]}"
    return f"TensorRT {version} bindings not fetched: run `{sys.executable} tests/real_tensorrt.py` (make test does)"


def environment(version: str) -> dict[str, str]:
    """PYTHONPATH and LD_LIBRARY_PATH for a subprocess that imports this version as `tensorrt`."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(folder(version) / "site"), str(ROOT), env.get("PYTHONPATH", "")])
    env["LD_LIBRARY_PATH"] = os.pathsep.join([str(folder(version) / "lib"), env.get("LD_LIBRARY_PATH", "")])
    return env


def prepare(version: str) -> None:
    """Fetch the wheel, lay it out as JetPack does (a `tensorrt` package), build the stub libraries."""
    target = folder(version)
    if ready(version):
        return
    shutil.rmtree(target, ignore_errors=True)
    (target / "wheel").mkdir(parents=True)
    try:
        _download(WHEELS[version], target / "wheel")
        wheel = next((target / "wheel").glob("*.whl"))
        with zipfile.ZipFile(wheel) as archive:
            names = [n for n in archive.namelist() if n.startswith("tensorrt_bindings/")]
            archive.extractall(target / "unpacked", members=names)
        (target / "site").mkdir()
        (target / "unpacked" / "tensorrt_bindings").rename(target / "site" / "tensorrt")
        _build_stubs(version, target / "lib")
    except (subprocess.CalledProcessError, OSError, StopIteration, zipfile.BadZipFile) as exc:
        detail = getattr(exc, "stderr", None) or str(exc) or type(exc).__name__
        (target / ".failed").write_text(str(detail))
        raise RuntimeError(f"TensorRT {version}: {str(detail).strip()[-300:]}") from None
    (target / ".ready").write_text(WHEELS[version] + "\n")


def _download(requirement: str, into: Path) -> None:
    # pip refuses two versions of one package in one command: one download per version.
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
         "--python-version", PYTHON, "--platform", "manylinux_2_17_x86_64", "--platform", "manylinux_2_28_x86_64",
         "-d", str(into), requirement],
        check=True, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def _build_stubs(version: str, lib: Path) -> None:
    lib.mkdir()
    source = lib / "stub.c"
    source.write_text(STUB_SOURCE)
    names = ["libnvinfer", "libnvinfer_plugin", "libnvonnxparser"] + (["libnvparsers"] if major(version) < 10 else [])
    for name in names:
        soname = f"{name}.so.{major(version)}"
        subprocess.run(
            ["gcc", "-shared", "-fPIC", "-o", str(lib / soname), f"-Wl,-soname,{soname}", str(source)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip


def main() -> int:
    failed = []
    for version in WHEELS:
        try:
            prepare(version)
        except RuntimeError as exc:
            failed.append(str(exc))
    for line in failed:
        print(f"note: {line} (its real-bindings tests will skip)", file=sys.stderr)
    print(f"TensorRT bindings ready for Python {PYTHON}: {', '.join(v for v in WHEELS if ready(v)) or 'none'}")
    return 0  # a version that cannot be fetched skips its tests, with the reason; it does not stop make test


if __name__ == "__main__":
    sys.exit(main())

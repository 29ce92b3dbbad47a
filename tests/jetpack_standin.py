"""Stand-ins for each JetPack's own Python, built from this machine's pyenv interpreters.

On a Jetson, TensorRT's Python bindings exist only for the system Python, beside Ubuntu's numpy and JetPack's
OpenCV (built for numpy 1.x, with GStreamer). A stand-in is made of:

- the pyenv interpreter of the JetPack's Python minor version (~/.pyenv/versions/3.8.*, 3.10.*, 3.12.*);
- a `dist-packages` folder with that Ubuntu's numpy and an opencv-python-headless wheel built for numpy 1.x
  standing in for JetPack's cv2 (it has no GStreamer; test_jetson.py covers GStreamer with Debian's cv2),
  installed without pip's RECORD files, as Debian's packages are: pip sees them as installed and cannot
  remove them;
- a venv made as the README tells Jetson users (`python3 -m venv --system-site-packages`), which sees that
  folder through a .pth file, as a Jetson venv sees /usr/lib/python3/dist-packages.

The dist-packages folders are cached under .cache/jetpack/NAME/; the venvs are made afresh by each test run.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache" / "jetpack"
PYENV = Path.home() / ".pyenv" / "versions"


@dataclass(frozen=True)
class JetPack:
    name: str
    readme: tuple[str, ...]  # its rows in the README's table "Which JetPack runs what"
    check: str  # its `edgeseg check --jetpack` value
    python: str  # the system Python's minor version
    numpy: str  # Ubuntu's python3-numpy
    opencv: str  # an opencv-python-headless release built for numpy 1.x, close to JetPack's OpenCV
    tensorrt: tuple[str, ...]  # real bindings on PyPI for this Python, nearest to the TensorRT the JetPack ships

    @property
    def folder(self) -> Path:
        return CACHE / self.name


JETPACKS = (
    JetPack("5.1", ("5.1.x",), "5", "3.8", "1.17.4", "4.5.4.60", ("8.6.1",)),
    JetPack("6", ("6.0", "6.1 / 6.2"), "6", "3.10", "1.21.5", "4.8.0.76", ("8.6.1", "10.3.0")),
    JetPack("7", ("7.0",), "7", "3.12", "1.26.4", "4.9.0.80", ("10.13.3.9",)),
)


def readme_rows(readme: str) -> dict[str, list[str]]:
    """The README's table "Which JetPack runs what": first cell's release (without the boards) -> its cells."""
    table = readme.split("### Which JetPack runs what", 1)[1].split("\n\n", 2)[1]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        rows[cells[0].split(" (")[0]] = cells
    return rows


def interpreter(jetpack: JetPack) -> Path | None:
    """The newest pyenv interpreter of the JetPack's minor version, or None."""
    found = sorted(PYENV.glob(f"{jetpack.python}.*/bin/python"), key=lambda p: int(p.parent.parent.name.split(".")[2]))
    return found[-1] if found else None


def dist_packages(jetpack: JetPack) -> Path:
    """The folder that holds the JetPack's numpy and cv2, made once and cached."""
    folder = jetpack.folder / "dist-packages"
    if (jetpack.folder / ".ready").is_file():
        return folder
    python = interpreter(jetpack)
    assert python is not None, f"no Python {jetpack.python} under {PYENV}"
    partial = jetpack.folder / "dist-packages.partial"
    shutil.rmtree(partial, ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--only-binary=:all:", "--target", partial,
         f"numpy=={jetpack.numpy}", f"opencv-python-headless=={jetpack.opencv}"],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    for record in partial.glob("*.dist-info/RECORD"):  # as Debian's packages: pip cannot uninstall them
        record.unlink()
    partial.rename(folder)
    (jetpack.folder / ".ready").write_text(f"numpy=={jetpack.numpy} opencv-python-headless=={jetpack.opencv}\n")
    return folder


def make_venv(jetpack: JetPack, where: Path) -> Path:
    """A venv made as the README says, seeing the JetPack's dist-packages; returns its folder."""
    python = interpreter(jetpack)
    assert python is not None
    subprocess.run([python, "-m", "venv", "--system-site-packages", where], check=True, capture_output=True)
    site = next((where / "lib").glob("python3*/site-packages"))
    (site / "jetpack-dist-packages.pth").write_text(f"{dist_packages(jetpack)}\n")
    return where


PROBE = """
import contextlib, io, json, numpy
seen = {"numpy": numpy.__version__, "numpy_file": numpy.__file__}
try:
    with contextlib.redirect_stderr(io.StringIO()):
        import cv2
    image = numpy.zeros((48, 64, 3), numpy.uint8)
    image[10:20, 5:30] = (0, 0, 255)
    ok, png = cv2.imencode(".png", image)
    back = cv2.resize(cv2.imdecode(png, cv2.IMREAD_COLOR), (32, 24), interpolation=cv2.INTER_NEAREST)
    seen.update(cv2=cv2.__version__, cv2_file=cv2.__file__,
                cv2_works=bool(ok) and back.shape == (24, 32, 3) and int(back[7, 8, 2]) == 255)
except Exception as exc:
    seen.update(cv2_works=False, cv2_error=f"{type(exc).__name__}: {exc}")
print(json.dumps(seen))
"""


def probe(venv: Path) -> dict:
    """numpy's version and file as the venv's Python sees them; cv2's, and whether it works."""
    done = subprocess.run([venv / "bin/python", "-c", PROBE], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def site_packages_listing(venv: Path) -> str:
    """What pip installed into the venv itself (not what it sees from dist-packages)."""
    site = next((venv / "lib").glob("python3*/site-packages"))
    return subprocess.run(
        [venv / "bin/python", "-m", "pip", "list", "--path", site, "--format", "freeze"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip

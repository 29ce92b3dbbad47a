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

The dist-packages folders are cached under .cache/jetpack/NAME/; the venvs are made afresh by each test run, on
threads of their own from the moment the session knows it will run test_jetpack.py (`start_installs`, called by
conftest.py): pip mostly waits on the network (6 min of wall time for 58 s of CPU for one stand-in, measured on
2 busy cores), so the three installs overlap each other and the rest of the suite.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from concurrent.futures import Future, ThreadPoolExecutor
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


# JetPack 6's stand-in installs the wheel `pip wheel` makes of the checkout (a wheel built on a desktop and
# copied to the board); the others install the checkout itself, as the README says.
FROM_WHEEL = {"6"}


@dataclass
class Device:
    jetpack: JetPack
    venv: Path
    before: dict  # numpy and cv2 as the fresh venv saw them
    after: dict  # and after `pip install` of the checkout
    installed: str  # what pip put into the venv itself

    def run(self, *argv, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
        program = [str(self.venv / "bin" / argv[0]), *map(str, argv[1:])]
        return subprocess.run(program, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)


# The installs' long-running children, killed when the session ends before they do (an interrupted run, -x, -k);
# once it has ended, no install starts another.
_running: set[subprocess.Popen] = set()
_ending = threading.Event()
_children_lock = threading.Lock()


def run_killable(argv: list, timeout: float, **options) -> subprocess.CompletedProcess:
    """subprocess.run, with the child known to finish_installs while it runs."""
    with _children_lock:
        if _ending.is_set():
            raise RuntimeError("the test session ended before this install step")
        child = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)
        _running.add(child)
    with child:
        try:
            stdout, stderr = child.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            stdout, stderr = child.communicate()
        finally:
            _running.discard(child)
    return subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)


def build_wheel(out: Path) -> Path:
    """The wheel `pip wheel` makes of the checkout on the desktop."""
    done = run_killable([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT], timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(out.glob("edgeseg-*.whl"))


def readme_install_command(jetpack: JetPack) -> str:
    """The install command the README gives for this JetPack (its rows agree, and agree with the stand-in)."""
    rows = readme_rows((ROOT / "README.md").read_text())
    commands = set()
    for release in jetpack.readme:
        cells = rows[release]
        assert cells[1].startswith(jetpack.python + ".") and cells[2] == jetpack.numpy, cells
        commands.add(cells[-1].strip("`"))
    assert len(commands) == 1, commands
    return commands.pop()


def run_readme_command(jetpack: JetPack, command: str, work: Path, target: str) -> str:
    """Run the README's command in `work` as a user would in the clone, `.` being `target` (the checkout or a
    wheel). Its first step, the venv, is make_venv: the stand-in's dist-packages must be seen by it."""
    venv_step, *steps = command.split(" && ")
    assert venv_step == "python3 -m venv --system-site-packages .venv", venv_step
    make_venv(jetpack, work / ".venv")
    said = []
    for step in steps:
        argv = [target + arg[1:] if arg.startswith(".[") else arg for arg in shlex.split(step)]
        # PIP_NO_COMPILE: the same packages, without compiling every .py of sympy and matplotlib to bytecode
        quicker = dict(os.environ, PIP_NO_COMPILE="1")
        done = run_killable(argv, timeout=900, cwd=work, env=quicker)
        said += [f"$ {' '.join(argv)}  (exit {done.returncode})"]
        said += [line for line in (done.stdout + done.stderr).splitlines() if "is ignored: it is neither" not in line]
        assert done.returncode == 0, "\n".join(said)[-3000:]
    return "\n".join(said)


def install(jetpack: JetPack, work: Path, wheel: Future) -> Device:
    """The JetPack's stand-in with edgeseg installed from this checkout by the README's command; the transcript
    goes to .cache/jetpack/NAME/install-transcript.txt."""
    command = readme_install_command(jetpack)
    before = probe(make_venv(jetpack, work / "before"))  # what a fresh venv sees: the JetPack's own packages
    target = str(wheel.result() if jetpack.name in FROM_WHEEL else ROOT)
    transcript = run_readme_command(jetpack, command, work, target)
    venv = work / ".venv"
    device = Device(jetpack, venv, before, probe(venv), site_packages_listing(venv))
    (jetpack.folder / "install-transcript.txt").write_text(
        f"{transcript}\nbefore: {before}\nafter: {device.after}\ninstalled into the venv:\n{device.installed}"
    )
    return device


class Installs:
    """The desktop wheel and each stand-in whose interpreter is here, made on threads of their own."""

    def __init__(self) -> None:
        self.work = Path(tempfile.mkdtemp(prefix="edgeseg-jetpacks-"))
        self.pool = ThreadPoolExecutor(max_workers=len(JETPACKS) + 1, thread_name_prefix="jetpack-install")
        (self.work / "wheel").mkdir()
        self.wheel = self.pool.submit(build_wheel, self.work / "wheel")
        self.devices = {
            jetpack.name: self.pool.submit(install, jetpack, self.work / f"jetpack{jetpack.name}", self.wheel)
            for jetpack in JETPACKS
            if interpreter(jetpack) is not None
        }

    def close(self) -> None:
        with _children_lock:
            _ending.set()
            children = list(_running)
        for child in children:  # the session ended first: nothing waits for these any more
            child.kill()
        self.pool.shutdown(wait=True)
        shutil.rmtree(self.work, ignore_errors=True)


_installs: Installs | None = None


def start_installs() -> Installs:
    """Start the installs once per session; later calls return the same ones."""
    global _installs
    if _installs is None:
        _installs = Installs()
    return _installs


def finish_installs() -> None:
    global _installs
    if _installs is not None:
        _installs.close()
        _installs = None

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

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
import traceback
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes import BUNDLE_RECIPES, shared_recipe

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
        # a pytest run on the device is a session of its own, not one of this session's xdist workers
        env = {name: value for name, value in (env or os.environ).items() if name != "PYTEST_XDIST_WORKER"}
        return subprocess.run(program, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)

    def to_json(self) -> dict:
        return {"jetpack": self.jetpack.name, "venv": str(self.venv), "before": self.before, "after": self.after,
                "installed": self.installed}  # fmt: skip

    @classmethod
    def from_json(cls, seen: dict) -> Device:
        jetpack = next(j for j in JETPACKS if j.name == seen["jetpack"])
        return cls(jetpack, Path(seen["venv"]), seen["before"], seen["after"], seen["installed"])


def build_wheel(out: Path) -> Path:
    """The wheel `pip wheel` makes of the checkout on the desktop."""
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, ROOT],
                          capture_output=True, text=True, timeout=600)  # fmt: skip
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
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, cwd=work, env=quicker)
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


# The runtime's own test modules that need no torch: they run on each JetPack's Python.
RUNTIME_TESTS = ("test_runtime", "test_bundle", "test_run", "test_api", "test_tensorrt_bindings")
# The network sources and sinks and the live view, on the oldest Python and OpenCV only: the suite stays in its time.
NETWORK_TESTS = ("test_streams", "test_live_view")


def runtime_tests(jetpack: JetPack) -> tuple[str, ...]:
    return RUNTIME_TESTS + (NETWORK_TESTS if jetpack.python == "3.8" else ())


def runtime_run(device: Device, bundles: Path, work: Path) -> dict:
    """The runtime's own tests on the device's Python, with the real bindings of its JetPack's TensorRT: pytest's
    exit status and output, and its JUnit report's path."""
    work.mkdir(parents=True)
    pytest_install = device.run("python", "-m", "pip", "install", "--quiet", "pytest", "selenium")
    assert pytest_install.returncode == 0, pytest_install.stderr[-2000:]
    env = dict(os.environ, EDGESEG_TEST_BUNDLES=str(bundles))
    env["EDGESEG_TENSORRT_VERSIONS"] = ",".join(device.jetpack.tensorrt)
    bindings = device.run("python", "tests/real_tensorrt.py", env=env)
    assert bindings.returncode == 0 and "ready for Python" in bindings.stdout, bindings.stdout + bindings.stderr
    report = work / "report.xml"
    tests = [f"tests/{module}.py" for module in runtime_tests(device.jetpack)]
    # its own --basetemp: pytest's default folder is shared with the session that runs this one
    options = ["-q", "-p", "no:cacheprovider", "-m", "not desktop", f"--basetemp={work / 'tmp'}"]
    done = device.run("pytest", *options, f"--junitxml={report}", *tests, env=env, timeout=900)
    return {"returncode": done.returncode, "stdout": done.stdout, "stderr": done.stderr, "report": str(report)}


# ---- the background job ------------------------------------------------------------------------------------------
# The installs mostly wait on the network (pip: 6 min of wall time for 58 s of CPU for one stand-in, measured on 2
# busy cores) and the runtime suites on their subprocesses and servers, so they run beside the rest of the suite, in
# a process of their own: with pytest-xdist, the test that reads a result may run in any worker. conftest.py starts
# the job when the session's collection includes test_jetpack.py and kills it (its whole process group) when the
# session ends. Results meet the tests in a folder: NAME.json when done, NAME.error (a traceback) when not.


class JobFolder:
    """The job's results, one file each, written whole (a rename)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def record(self, name: str, make) -> Any:
        """Call `make` and write what it returns, or its traceback; return it, or raise what it raised."""
        try:
            value = make()
        except BaseException:
            self.write(f"{name}.error", traceback.format_exc())
            raise
        self.write(f"{name}.json", json.dumps(value))
        return value

    def write(self, file: str, text: str) -> None:
        partial = self.folder / f".{file}.partial"
        partial.write_text(text)
        partial.rename(self.folder / file)

    def wait(self, name: str, timeout: float = 2700) -> Any:
        """A result, once the job has it; an AssertionError with the job's own words when it failed or ended
        without it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.folder / f"{name}.json").is_file():
                return json.loads((self.folder / f"{name}.json").read_text())
            if (self.folder / f"{name}.error").is_file():
                raise AssertionError(f"{name}: {(self.folder / f'{name}.error').read_text()[-4000:]}")
            if (self.folder / "ended").is_file():
                raise AssertionError(f"the JetPack job ended without {name}: {self.log_tail()}")
            if not (self.folder / "job.log").is_file():
                raise AssertionError("the JetPack job was not started (conftest.py starts it when the session "
                                     "collects test_jetpack.py)")  # fmt: skip
            time.sleep(1)
        raise AssertionError(f"no {name} from the JetPack job after {timeout:.0f} s: {self.log_tail()}")

    def log_tail(self) -> str:
        return (self.folder / "job.log").read_text()[-3000:]


def stand_in(jetpack: JetPack, work: Path, results: JobFolder, wheel: Future, bundles: Future) -> None:
    """One JetPack's install, then its runtime tests once the desktop's bundles are made."""
    device = Device.from_json(results.record(
        f"device-{jetpack.name}", lambda: install(jetpack, work / f"jetpack{jetpack.name}", wheel).to_json()
    ))  # fmt: skip
    # bundles.result() inside the record: a recipe that failed is this result's error too
    suite = work / f"runtime{jetpack.name}"
    results.record(f"runtime-{jetpack.name}", lambda: runtime_run(device, bundles.result(), suite))


def make_every_recipe(recipes: Path) -> Path:
    for name in BUNDLE_RECIPES:
        shared_recipe(recipes, name)
    return recipes


def run_job(work: Path, recipes: Path) -> None:
    """The wheel, each stand-in whose interpreter is here and its runtime tests, and the desktop's bundles."""
    results = JobFolder(work)
    with ThreadPoolExecutor(max_workers=len(JETPACKS) + 2, thread_name_prefix="jetpack") as pool:
        (work / "wheel").mkdir(exist_ok=True)
        wheel = pool.submit(lambda: Path(results.record("wheel", lambda: str(build_wheel(work / "wheel")))))
        bundles = pool.submit(make_every_recipe, recipes)
        for jetpack in JETPACKS:
            if interpreter(jetpack) is not None:
                pool.submit(stand_in, jetpack, work, results, wheel, bundles)


class Job:
    """The background job of this test session, started at most once by the process that runs the session."""

    process: subprocess.Popen | None = None
    work: Path | None = None

    @classmethod
    def start(cls, root: Path) -> None:
        if cls.process is not None:
            return
        cls.work = root / "jetpack"
        cls.work.mkdir(parents=True, exist_ok=True)
        with open(cls.work / "job.log", "w") as log:
            # Through sh, which marks the job ended however it ends (an import error, the OOM killer): a test waiting
            # for a result then fails at once instead of after its timeout.
            job = [sys.executable, __file__, str(cls.work), str(root / "recipes")]
            argv = ["sh", "-c", '"$@"; : > "$0/ended"', str(cls.work), *job]
            env = dict(os.environ, PYTHONPATH=str(ROOT))  # this checkout's edgeseg, as the session's own
            cls.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
                                           start_new_session=True)  # fmt: skip

    @classmethod
    def stop(cls) -> None:
        """Kill what is left of the job (an interrupted session, -x, -k). Its venvs stay in pytest's base temporary
        folder, which pytest removes with the older ones (removing ~1 GB here took minutes on a busy machine)."""
        if cls.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cls.process.pid, signal.SIGKILL)
        cls.process.wait()
        cls.process = None


def results(root: Path) -> JobFolder:
    """Where the tests find the job's results (`root`: the shared folder of tests/recipes.py)."""
    return JobFolder(root / "jetpack")


if __name__ == "__main__":
    # PYTHONPATH put this checkout first for the job itself (Job.start); the stand-ins must see only what their own
    # install put there (with it, pip took the checkout for an installed edgeseg and skipped the wheel).
    os.environ.pop("PYTHONPATH", None)
    run_job(Path(sys.argv[1]), Path(sys.argv[2]))

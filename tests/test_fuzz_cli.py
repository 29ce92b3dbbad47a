"""A bounded fuzz run of the CLI: every verb with argument lists drawn from its own flags and hostile values.
The property: exit status 0, 1, 2 or 130 and never an exception. A failure prints its seed and argv;
replay it with EDGESEG_FUZZ_SEED=SEED."""

from __future__ import annotations

import argparse
import os
import random
import time

from test_arguments import verb_parsers

from edgeseg.cli import main

CASES = 400
SECONDS = 60
HOSTILE = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "x" * 10_000,
    "../../etc/passwd",
    "/",
    "/dev/null",
    "-1",
    "-5",
    "0",
    "1e309",
    "nan",
    "-inf",
    "9" * 40,
    "0x10",
    "1,2,3",
    "a=b",
    "=",
    "ftp://host/x",
    "synthetic://nowhere",
    "synthetic://driving?seed=3-1",
    "synthetic://driving?size=0x0",
    "rtsp://",
    "gst://",
    "csi://abc",
    "triton://",
    "udp://127.0.0.1:0",
    "file://",
    "no such file.mp4",
    "out/{stream}.mp4",
    "http://127.0.0.1:0/{index}",
    "\u202eevil",
    "\x1b[2J",
    "%s%n",
    "{}",
]


def draw_argv(rng: random.Random, verb: str, parser: argparse.ArgumentParser) -> list[str]:
    argv = [verb]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if not action.option_strings:  # positionals: always hostile (demo's optional scene too), so no real work starts
            argv.append(rng.choice(HOSTILE))
            continue
        if not action.required and rng.random() < 0.6:
            continue
        argv.append(rng.choice(action.option_strings))
        if action.nargs != 0:
            choices = list(action.choices) if action.choices else []
            argv.append(str(rng.choice(choices)) if choices and rng.random() < 0.3 else rng.choice(HOSTILE))
    return argv


def shown(argv: list[str]) -> str:
    """An argv fit for a failure message: long values cut, so the seed stays readable."""
    return repr([a if len(a) <= 60 else f"{a[:20]}...({len(a)} characters)" for a in argv])


def test_random_argument_lists_never_raise(tmp_path, monkeypatch, capsys):
    seed = int(os.environ.get("EDGESEG_FUZZ_SEED", random.SystemRandom().randrange(1 << 30)))
    rng = random.Random(seed)
    monkeypatch.chdir(tmp_path)  # whatever a case writes, it writes here
    parsers = verb_parsers()
    deadline = time.monotonic() + SECONDS
    ran = 0
    while ran < CASES and time.monotonic() < deadline:
        verb = rng.choice(sorted(parsers))
        argv = draw_argv(rng, verb, parsers[verb])
        try:
            code = main(argv)
        except BaseException as exc:  # noqa: BLE001 - the failure is reported with its seed
            raise AssertionError(f"seed {seed}: {shown(argv)} raised {type(exc).__name__}: {str(exc)[:300]}") from exc
        err = capsys.readouterr().err
        assert code in (0, 1, 2, 130), f"seed {seed}: {shown(argv)} exited {code}"
        assert "Traceback" not in err, f"seed {seed}: {shown(argv)} printed a traceback"
        ran += 1
    assert ran >= 50, f"seed {seed}: only {ran} cases in {SECONDS} s"

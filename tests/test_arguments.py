"""Every flag of every verb is checked when parsed: an out-of-range value is one line and exit status 2."""

from __future__ import annotations

import argparse

import pytest
from conftest import assert_one_line_error, run_cli

from edgeseg.arguments import OUT_OF_RANGE
from edgeseg.cli import build_parser


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    verbs = next(action for action in parser._actions if isinstance(action, argparse._SubParsersAction))
    return dict(verbs.choices)


def required_arguments(parser: argparse.ArgumentParser) -> list[str]:
    """Placeholder values for what the verb requires, so only the flag under test can be wrong."""
    argv = []
    for action in parser._actions:
        if not action.option_strings and action.dest not in ("help",) and action.nargs != "?":
            argv.append("x")
        elif action.required:
            argv += [action.option_strings[0], "x"]
    return argv


NUMERIC_FLAGS = [
    (verb, action.option_strings[-1], OUT_OF_RANGE[action.type])
    for verb, parser in verb_parsers().items()
    for action in parser._actions
    if action.type in OUT_OF_RANGE
]


def test_every_numeric_flag_has_a_range():
    unchecked = [
        f"{verb} {action.option_strings[-1]}"
        for verb, parser in verb_parsers().items()
        for action in parser._actions
        if action.type in (int, float) and action.choices is None
    ]
    assert not unchecked, f"flags parsed as plain numbers, with no range: {unchecked}"
    assert len(NUMERIC_FLAGS) >= 30  # every verb's counts, timeouts, fractions and indices


@pytest.mark.parametrize("verb,flag,value", NUMERIC_FLAGS, ids=[f"{v} {f}" for v, f, _ in NUMERIC_FLAGS])
def test_out_of_range_value_is_one_line(verb, flag, value, capsys):
    argv = [verb, *required_arguments(verb_parsers()[verb]), flag, value]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line_error(code, err, f"edgeseg {verb}: argument {flag}", "--help")


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["run", "b", "-i", "x", "--alpha", "-1"], "from 0 to 1"),
        (["run", "b", "-i", "x", "--frames", "-5"], "at least 1, not -5"),
        (["run", "b", "-i", "x", "--stream-timeout", "nan"], "not a finite number"),
        (["run", "b", "-i", "x", "--threads", "two"], "'two' is not an integer"),
        (["export", "unet", "-o", "b", "--batch", "0"], "at least 1"),
        (["export", "unet", "-o", "b", "--batch", "4", "--dynamic-batch"], "contradict each other"),
        (["export", "unet", "-o", "b", "--opset", "21"], "from 11 to 20"),
        (["calibrate", "b", "--data", "x", "--min-agreement", "1.2"], "outside (0, 1]"),
        (["bench", "b", "--streams", "2", "--plot", "p.png"], "--json"),
    ],
)
def test_bad_values_and_contradictions(argv, fragment, capsys):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert_one_line_error(code, err, fragment)

"""The CLI's shape: short functions, and each flag several verbs share added in one place (a shared argument group),
so a flag cannot drift between verbs again (`--backend` once had choices in eval and none in run)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from test_arguments import verb_parsers

CLI = Path(__file__).resolve().parent.parent / "edgeseg" / "cli"
LONGEST_FUNCTION = 80  # lines, decorators and docstring included
# Flags more than one verb takes. Each is added by exactly one add_argument call in edgeseg/cli.
SHARED_FLAGS = (
    "--backend",
    "--precision",
    "--threads",
    "--frames",
    "--input",
    "--data",
    "--dla",
    "--size",
    "--classes",
    "--arg",
    "--streams",
    "--also",
    "--max-pixels",
    "--verbose",
)
# Flags of a shared group one verb takes today; they are added once too, in the group a second verb would use.
GROUP_FLAGS = (
    "--score-threshold",
    "--stream-timeout",
    "--reconnect-retries",
    "--reconnect-max-wait",
    "--rtsp-transport",
    "--input-option",
    "--view-token",
    "--view-token-file",
    "--view-public",
    "--filter-mode",
    "--alpha",
    "--visualize",
    "--save-mask",
    "--no-legend",
)


def cli_modules() -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text(), filename=str(path)) for path in sorted(CLI.glob("*.py"))}


def added_flags() -> dict[str, list[str]]:
    """Each flag's add_argument calls in edgeseg/cli, as 'module:line'."""
    found: dict[str, list[str]] = {}
    for name, tree in cli_modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "add_argument":
                for arg in node.args:
                    if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
                        found.setdefault(arg.value, []).append(f"{name}:{node.lineno}")
    return found


def test_the_cli_is_a_package_of_modules():
    assert not CLI.with_suffix(".py").exists(), "edgeseg/cli.py and edgeseg/cli/ cannot both be the CLI"
    assert {"__init__.py", "groups.py", "parser.py", "entry.py"} <= set(cli_modules())


def test_no_function_is_longer_than_80_lines():
    too_long = sorted(
        f"{name}:{node.lineno} {node.name} ({node.end_lineno - start + 1} lines)"
        for name, tree in cli_modules().items()
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for start in [min([node.lineno, *(d.lineno for d in node.decorator_list)])]
        if node.end_lineno - start + 1 > LONGEST_FUNCTION
    )
    assert not too_long, f"functions over {LONGEST_FUNCTION} lines: {too_long}"


@pytest.mark.parametrize("flag", SHARED_FLAGS + GROUP_FLAGS)
def test_each_shared_flag_is_added_in_one_place(flag):
    places = added_flags().get(flag, [])
    assert len(places) == 1, f"{flag} is added {len(places)} times: {places}"


def test_shared_flags_are_shared():
    """The list above stays true: every flag in SHARED_FLAGS is taken by two verbs or more."""
    takers = {
        flag: [verb for verb, parser in verb_parsers().items() if flag in parser._option_string_actions]
        for flag in SHARED_FLAGS
    }
    assert all(len(verbs) >= 2 for verbs in takers.values()), takers


def test_a_shared_flag_parses_alike_in_every_verb():
    """Type and choices of a shared flag are the same wherever it is taken (its default and help may differ)."""
    for flag in ("--backend", "--threads", "--frames", "--also", "--max-pixels"):
        forms = {
            (getattr(action.type, "__name__", action.type), tuple(action.choices or ()))
            for parser in verb_parsers().values()
            for action in [parser._option_string_actions.get(flag)]
            if action is not None
        }
        assert len(forms) == 1, f"{flag} parses differently across verbs: {forms}"


def test_init_only_re_exports_what_callers_import():
    import edgeseg.cli

    assert {"main", "build_parser", "parse_model_args", "os_error_line"} <= set(edgeseg.cli.__all__)
    assert all(callable(getattr(edgeseg.cli, name)) for name in edgeseg.cli.__all__)

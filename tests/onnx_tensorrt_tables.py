"""The operator tables of edgeseg/engines/tensorrt_onnx_rules.json, read from onnx/onnx-tensorrt's docs/operators.md.

Each table is the Operator Support Matrix of docs/operators.md at one branch of onnx/onnx-tensorrt (8.2-GA,
8.5-GA, 8.6-GA, 10.1-GA): per operator, Supported (Y, "Y [EXPERIMENTAL]" or N), the Supported Types and the
Restrictions column, verbatim but for markdown escapes (`\\.`) and line breaks (`<br />` -> a space). Run by
hand against a clone that has those branches:

    python tests/onnx_tensorrt_tables.py /path/to/onnx-tensorrt            # check the JSON's tables
    python tests/onnx_tensorrt_tables.py /path/to/onnx-tensorrt --write    # rewrite them

The rest of the JSON (targets, opset ranges, the rules read from the parser's source, DLA) is written by hand,
each with its source.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

RULES = Path(__file__).resolve().parent.parent / "edgeseg" / "engines" / "tensorrt_onnx_rules.json"
BRANCHES = ("8.2-GA", "8.5-GA", "8.6-GA", "10.1-GA")


def table_name(branch: str) -> str:
    return f"onnx-tensorrt {branch} docs/operators.md"


def parse_operators(markdown: str) -> dict[str, dict]:
    """The Operator Support Matrix of one operators.md, as the JSON holds it."""
    table: dict[str, dict] = {}
    for line in markdown.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if not line.startswith("|") or len(cells) < 2 or cells[0] in ("Operator", "") or set(cells[0]) <= {"-"}:
            continue
        name, supported = cells[0], cells[1]
        if not supported.startswith("Y"):
            table[name] = {"supported": False}
            continue
        entry: dict = {"types": [t.strip() for t in cells[2].split(",") if t.strip()] if len(cells) > 2 else []}
        restrictions = " ".join(cells[3:]).strip() if len(cells) > 3 else ""
        restrictions = re.sub(r"\s*<br\s*/?>\s*", " ", restrictions.replace("\\.", ".")).strip()
        if restrictions:
            entry["restrictions"] = restrictions
        table[name] = entry
    return table


def opset_line(markdown: str) -> str:
    """The sentence naming the opset range ("TensorRT 8.2 supports operators up to Opset 13")."""
    return next((line.strip() for line in markdown.splitlines() if "pset" in line and "supports" in line), "")


def read_branch(clone: Path, branch: str) -> str:
    return subprocess.run(["git", "-C", str(clone), "show", f"{branch}:docs/operators.md"], check=True,
                          capture_output=True, text=True).stdout  # fmt: skip


def main(argv: list) -> int:
    if not argv or argv[0].startswith("-"):
        print(__doc__.strip().splitlines()[0] + "\nusage: onnx_tensorrt_tables.py CLONE [--write]", file=sys.stderr)
        return 2
    clone, write = Path(argv[0]), "--write" in argv
    rules = json.loads(RULES.read_text())
    tables = rules["operator_tables"]
    differences = 0
    for branch in BRANCHES:
        markdown = read_branch(clone, branch)
        parsed = parse_operators(markdown)
        name = table_name(branch)
        print(f"{branch}: {len(parsed)} operators; {opset_line(markdown)}")
        if tables.get(name) != parsed:
            differences += 1
            old = tables.get(name, {})
            changed = sorted(k for k in set(old) | set(parsed) if old.get(k) != parsed.get(k))
            print(f"  differs from the JSON in {len(changed)} operators: {', '.join(changed[:12])}")
            tables[name] = parsed
    if write:
        rules["operator_tables"] = {table_name(b): tables[table_name(b)] for b in BRANCHES}
        rules["operator_tables"].update({k: v for k, v in tables.items() if k not in rules["operator_tables"]})
        RULES.write_text(json.dumps(rules, indent=1) + "\n")
        print(f"wrote {RULES}")
    return 1 if differences and not write else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Fail when a Python function in the given folders is longer than the limit (default 80 lines).

    python scripts/function_length.py [--max 80] FOLDER ...

Long functions are where the parts of a change hide from each other; the project keeps
product code under the limit (the JavaScript twin is function_length.mjs).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path


def long_functions(folders: list[str], limit: int) -> list[str]:
    found = []
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = node.end_lineno - node.lineno + 1
                    if lines > limit:
                        found.append(f"{path}:{node.lineno}: {node.name} has {lines} lines")
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folders", nargs="+")
    parser.add_argument("--max", type=int, default=80)
    args = parser.parse_args()
    found = long_functions(args.folders, args.max)
    for line in found:
        print(f"{line} (limit {args.max})", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())

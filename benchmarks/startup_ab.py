"""Offline start-up of the web app: this working tree's build against a baseline revision's.

Start-up times on these machines drift by 20% and more within minutes, so a change to the web
app is measured against the build before it in the same run: the baseline (a git revision, built
in a scratch worktree) and the working tree each serve the same starter model, and the two take
turns, one reload and one browser restart each (offline, warm cache, as `make bench-browser`
measures them), starting with the other one every second pair.

    python benchmarks/startup_ab.py --baseline HEAD~1 [--pairs 10]      (make bench-startup)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
sys.path[:0] = [str(PROJECT), str(PROJECT / "tests"), str(HERE)]

from browser import AppServer, build_webclient  # noqa: E402
from browser_inference import warm_offline_starts  # noqa: E402

RESULTS = HERE / "results"


def build_revision(revision: str, worktree: Path) -> Path:
    """The web client of ``revision``, built in a scratch worktree with this tree's node_modules."""
    subprocess.run(
        ["git", "worktree", "add", "--detach", "--force", str(worktree), revision],
        cwd=PROJECT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    (worktree / "node_modules").symlink_to(PROJECT / "node_modules")
    subprocess.run(
        ["node", "webclient/build.mjs"], cwd=worktree, check=True, capture_output=True, text=True
    )
    return worktree / "webclient" / "dist"


def alternate(dists: dict[str, Path], photo: Path, pairs: int) -> dict[str, dict[str, list[float]]]:
    """ms to the first prediction, per build and kind of start, the builds taking turns."""
    from playwright.sync_api import sync_playwright

    times: dict[str, dict[str, list[float]]] = {name: {} for name in dists}
    with tempfile.TemporaryDirectory(prefix="binbot-ab-") as tmp:
        servers = {
            name: AppServer(Path(tmp) / name, extra_env={"BINBOT_WEBCLIENT_DIR": str(dist)})
            for name, dist in dists.items()
        }
        try:
            for server in servers.values():
                server.start()
            with sync_playwright() as playwright:
                for pair in range(pairs):
                    order = list(dists) if pair % 2 == 0 else list(reversed(dists))
                    for name in order:
                        started = warm_offline_starts(playwright, servers[name].url, photo, 1)
                        for kind, values in started["times"].items():
                            times[name].setdefault(kind, []).extend(values)
                    print(f"pair {pair + 1}/{pairs}: " + "; ".join(
                        f"{name} " + ", ".join(f"{v[-1]:.0f}" for v in times[name].values())
                        for name in dists
                    ))  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()
    return times


def summarise(times: dict[str, dict[str, list[float]]]) -> dict[str, dict]:
    baseline, change = times["baseline"], times["change"]
    summary = {}
    for kind in baseline:
        old, new = baseline[kind], change[kind]
        summary[kind] = {
            "baseline_median_ms": statistics.median(old),
            "change_median_ms": statistics.median(new),
            "change_faster_pairs": sum(b < a for a, b in zip(old, new, strict=True)),
            "pairs": len(old),
            "median_paired_ratio": statistics.median(b / a for a, b in zip(old, new, strict=True)),
        }
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--baseline", required=True, help="git revision to compare against")
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("--dataset", default=os.environ.get("BINBOT_DATASET"))
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)

    from training.dataset import load_dataset

    photo = load_dataset(args.dataset).split("test")[0].path
    with tempfile.TemporaryDirectory(prefix="binbot-baseline-") as tmp:
        worktree = Path(tmp) / "tree"
        try:
            dists = {
                "baseline": build_revision(args.baseline, worktree),
                "change": build_webclient(),
            }
            times = alternate(dists, photo, args.pairs)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(worktree)], cwd=PROJECT,
                           capture_output=True)  # fmt: skip
    summary = summarise(times)
    print(f"\nbaseline {args.baseline} against this working tree, {args.pairs} alternating pairs")
    print(f"{'offline start':28} {'baseline':>9} {'change':>8} {'faster':>7} {'ratio':>6}")
    for kind, row in summary.items():
        print(f"{kind:28} {row['baseline_median_ms']:7.0f} ms {row['change_median_ms']:5.0f} ms "
              f"{row['change_faster_pairs']:>3}/{row['pairs']:<3} {row['median_paired_ratio']:6.2f}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "startup_ab.json"
    out.write_text(json.dumps({"baseline": args.baseline, "times": times, "summary": summary},
                              indent=2) + "\n")  # fmt: skip
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: none / float16 / uint8 TF.js bundles of a trained run, measured in Node (wasm).

    python benchmarks/convert_ewaste.py --run runs/starter --dataset ../shared/datasets/e-waste-image-dataset.zip

For each quantization: bundle size, test top-1 of the converted model on the test split in
TF.js (Node, wasm backend), top-1 agreement with Keras, and median per-image latency in
Node next to Keras's own latency (a compiled tf.function, batch 1) measured in the same run.
Bars (issue 3): the default bundle <= 4.0 MB, its test accuracy within 0.3 points of Keras,
agreement >= 99.5%. Writes ``benchmarks/results/convert_ewaste.json``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from common import KerasReference, bench_parser, start_benchmark

RESULTS = Path(__file__).resolve().parent / "results"


def keras_latency_ms(model, records) -> float:
    """Median per-image latency of the Keras model (compiled tf.function, batch 1)."""
    import numpy as np

    return float(np.median(KerasReference(model, records).times_ms(0, len(records))))


def main() -> int:
    parser = bench_parser(__doc__)
    parser.add_argument("--run", default="runs/starter")
    parser.add_argument("--dataset", default=os.environ.get("BINBOT_DATASET"))
    args = parser.parse_args()
    start_benchmark(args)

    from conversion.convert import BY_SIZE, choose, measure_candidates, reference_records
    from training.dataset import load_dataset
    from training.run_dir import load_run

    run = load_run(args.run)
    dataset = load_dataset(args.dataset)
    records = reference_records(dataset, None)
    with tempfile.TemporaryDirectory(prefix="binbot-bench-") as tmp:
        candidates = measure_candidates(run, records, Path(tmp), list(BY_SIZE))
        keras_ms = keras_latency_ms(run.model, records)
        chosen = choose(candidates)

    rows = []
    for c in candidates:
        v = c.verification
        rows.append(
            {
                "quantization": c.quantization,
                "bytes": c.bytes,
                "tfjs_test_top1": v.tfjs_accuracy,
                "keras_test_top1": v.keras_accuracy,
                "top1_agreement": v.top1_agreement,
                "max_probability_difference": v.max_probability_difference,
                "lost_images": v.lost_images,
                "gained_images": v.gained_images,
                "loss_p_value": v.loss_p_value,
                "tfjs_median_ms": v.tfjs_median_latency_ms,
                "keras_median_ms": keras_ms,
                "latency_ratio_tfjs_over_keras": v.tfjs_median_latency_ms / keras_ms,
                "backend": v.backend,
                "default": c is chosen,
            }
        )
    default = next(r for r in rows if r["default"])
    bars = {"default_bytes_max": 4_000_000, "default_loss_p_value_min": 0.05}
    passes = {
        "size": default["bytes"] <= bars["default_bytes_max"],
        "no_significant_loss": default["loss_p_value"] >= bars["default_loss_p_value_min"],
    }

    print(f"\n{len(records)} test images; Keras test top-1 {rows[0]['keras_test_top1']:.2%}")
    header = f"{'quantization':12s} {'size MB':>8s} {'TF.js top-1':>11s} {'agreement':>9s} {'max|dp|':>8s} {'lost/gained':>11s} {'TF.js ms':>9s} {'Keras ms':>9s} {'ratio':>6s}"
    print(header)
    for r in rows:
        mark = "  <- default" if r["default"] else ""
        print(
            f"{r['quantization']:12s} {r['bytes'] / 1e6:8.2f} {r['tfjs_test_top1']:11.2%} "
            f"{r['top1_agreement']:9.2%} {r['max_probability_difference']:8.3f} "
            f"{r['lost_images']:>5d}/{r['gained_images']:<5d} "
            f"{r['tfjs_median_ms']:9.1f} {r['keras_median_ms']:9.1f} "
            f"{r['latency_ratio_tfjs_over_keras']:6.2f}{mark}"
        )
    print(f"bars for the default: {bars}; met: {passes}")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / "convert_ewaste.json"
    out.write_text(json.dumps({"rows": rows, "bars": bars, "passes": passes}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if all(passes.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())

"""`binbot`: the one console command. Subcommands import TensorFlow only when they need it.

User mistakes (``BinbotError``) become one line on stderr and exit code 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from training.errors import BinbotError

EXIT_USER_ERROR = 2


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with its C++ start-up chatter hidden.

    On a CPU machine TensorFlow's native libraries print CUDA-registration warnings straight
    to file descriptor 2 while importing, before any logging setting applies; users would see
    a screen of noise above a one-line error. Only that import is silenced: a Python
    exception raised by it still propagates and is printed normally.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("CUDA_VISIBLE_DEVICES", "-1")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _log(message: str) -> None:
    print(message, flush=True)


def cmd_dataset_inspect(args: argparse.Namespace) -> int:
    from training.inspection import inspect_dataset

    inspect_dataset(
        args.path,
        args.out,
        near_threshold=args.near_threshold,
        min_correlation=args.min_correlation,
        seed=args.seed,
        log=_log,
    )
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import TrainConfig, train

    config = TrainConfig(
        backbone=args.backbone,
        weights=None if args.weights == "none" else args.weights,
        batch_size=args.batch_size,
        head_epochs=args.head_epochs,
        head_learning_rate=args.head_lr,
        fine_tune_epochs=args.fine_tune_epochs,
        fine_tune_learning_rate=args.fine_tune_lr,
        fine_tune_layers=args.fine_tune_layers,
        patience=args.patience,
        augment=not args.no_augment,
        seed=args.seed,
        limit_per_class=args.limit_per_class,
    )
    _check_positive(config.batch_size, "--batch-size")
    result = train(args.dataset, args.out, config, overwrite=args.overwrite, log=_log)
    if not args.skip_evaluation:
        from training.evaluate import evaluate_run

        evaluate_run(result.run_dir, args.dataset, log=_log)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_run

    evaluate_run(args.run_dir, args.dataset, log=_log)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from training.predict import predict_files
    from training.run_dir import load_run

    run = load_run(args.run_dir)
    failures = 0
    for result in predict_files(run, [Path(p) for p in args.images], k=args.top):
        if isinstance(result, BinbotError):
            print(f"binbot: error: {result}", file=sys.stderr)
            failures += 1
            continue
        ranked = "  ".join(f"{label} {p:.1%}" for label, p in result.top)
        print(f"{result.path}: {ranked}")
    return EXIT_USER_ERROR if failures else 0


def cmd_convert(args: argparse.Namespace) -> int:
    from conversion.convert import convert_run

    convert_run(
        args.run_dir,
        args.out,
        quantization=args.quantize,
        dataset=args.dataset,
        version=args.version,
        reference_images=args.reference_images,
        overwrite=args.overwrite,
        log=_log,
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.serve import serve

    serve(args.host, args.port, args.workers, args.new_admin_token, _log)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from server import create_app
    from server.worker import run_worker

    def stop(_signum, _frame):
        raise KeyboardInterrupt  # SIGTERM (from `binbot serve`, systemd...) stops like Ctrl-C

    signal.signal(signal.SIGTERM, stop)
    try:
        run_worker(create_app(), once=args.once, log=_log)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting is noise
        _log("worker stopped")
    return 0


def _layer_count(text: str) -> int | None:
    """`--fine-tune-layers`: a positive number, or 'all' for the whole backbone."""
    if text == "all":
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'all', got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def _check_positive(value: int, flag: str) -> None:
    if value <= 0:
        raise BinbotError(f"{flag} must be positive, got {value}")


def build_parser() -> argparse.ArgumentParser:
    from training.train import TrainConfig

    d = TrainConfig()
    parser = argparse.ArgumentParser(
        prog="binbot",
        description="BinBot: recognise e-waste from a photo. Train, evaluate and use the model.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    dataset = commands.add_parser("dataset", help="look at a dataset before training on it")
    dataset_commands = dataset.add_subparsers(
        dest="dataset_command", metavar="ACTION", required=True
    )
    inspect = dataset_commands.add_parser(
        "inspect",
        help="structure, class balance, sizes, bad files, samples and duplicates",
        description="Print and write (JSON + PNG) what a dataset holds: splits, classes, "
        "per-class counts, imbalance, image sizes, undecodable files, sample images and "
        "duplicate images within and across splits.",
    )
    inspect.add_argument("path", help="a zip file or a folder of class folders")
    inspect.add_argument("--out", default="reports/dataset", help="output folder (%(default)s)")
    inspect.add_argument(
        "--near-threshold",
        type=int,
        default=10,
        help="max perceptual-hash distance for near duplicates (%(default)s)",
    )
    inspect.add_argument(
        "--min-correlation",
        type=float,
        default=0.90,
        help="min thumbnail correlation to confirm a near duplicate (%(default)s)",
    )
    inspect.add_argument(
        "--seed",
        type=int,
        default=42,
        help="seed of the split for flat class folders (%(default)s)",
    )
    inspect.set_defaults(handler=cmd_dataset_inspect, needs_tensorflow=False)

    train = commands.add_parser(
        "train",
        help="train a classifier (two phases) and evaluate it",
        description="Train MobileNetV2 (ImageNet weights) with a small head: first the head on "
        "the frozen backbone, then the top of the backbone at a low learning rate. Writes the "
        "model, labels, config, dataset fingerprint, history, curves and evaluation to --out.",
    )
    train.add_argument("dataset", help="a zip file or a folder of class folders")
    train.add_argument("--out", required=True, help="run folder to write")
    train.add_argument(
        "--backbone", choices=["mobilenet_v2", "efficientnet_v2_b0"], default="mobilenet_v2"
    )
    train.add_argument(
        "--weights",
        default="imagenet",
        help="'imagenet', 'none' (random init) or a weights file (%(default)s)",
    )
    train.add_argument("--batch-size", type=int, default=d.batch_size)
    train.add_argument(
        "--head-epochs", type=int, default=d.head_epochs, help="max epochs of phase 1 (%(default)s)"
    )
    train.add_argument("--head-lr", type=float, default=d.head_learning_rate)
    train.add_argument(
        "--fine-tune-epochs",
        type=int,
        default=d.fine_tune_epochs,
        help="max epochs of phase 2; 0 skips fine-tuning (%(default)s)",
    )
    train.add_argument("--fine-tune-lr", type=float, default=d.fine_tune_learning_rate)
    train.add_argument(
        "--fine-tune-layers",
        type=_layer_count,
        default=d.fine_tune_layers,
        help="top backbone layers unfrozen in phase 2, or 'all' (default: all)",
    )
    train.add_argument(
        "--patience",
        type=int,
        default=d.patience,
        help="early-stopping patience on validation loss (%(default)s)",
    )
    train.add_argument("--no-augment", action="store_true", help="train without augmentation")
    train.add_argument(
        "--limit-per-class",
        type=int,
        default=None,
        help="use only the first N train/val images of each class (quick runs)",
    )
    train.add_argument("--seed", type=int, default=d.seed)
    train.add_argument("--overwrite", action="store_true", help="replace an existing run")
    train.add_argument(
        "--skip-evaluation",
        action="store_true",
        help="do not evaluate on the test split at the end",
    )
    train.set_defaults(handler=cmd_train)

    evaluate = commands.add_parser(
        "evaluate",
        help="score a run on the test split and write its report",
        description="Test accuracy, per-class report, confusion matrix, misclassified images, "
        "metrics.json and report.md, written to RUN_DIR/evaluation.",
    )
    evaluate.add_argument("run_dir", help="a folder written by `binbot train`")
    evaluate.add_argument(
        "dataset",
        nargs="?",
        default=None,
        help="dataset to evaluate on (default: the one the run used)",
    )
    evaluate.set_defaults(handler=cmd_evaluate)

    convert = commands.add_parser(
        "convert",
        help="turn a run into a verified, quantized TF.js graph model with a manifest",
        description="Export the run's model as a SavedModel, convert it to a TF.js graph "
        "model, run it in TF.js (Node, wasm) on the test split and compare with Keras. Without "
        "--quantize, none/float16/uint8 are all measured and the smallest whose test accuracy "
        "is within 0.3 points of Keras is kept. Fails (exit 2, no manifest) when the converted "
        "model disagrees with Keras.",
    )
    convert.add_argument("run_dir", help="a folder written by `binbot train`")
    convert.add_argument("--out", required=True, help="bundle folder to write")
    convert.add_argument(
        "--quantize",
        choices=["none", "float16", "uint8"],
        default=None,
        help="weights format (default: chosen by measurement)",
    )
    convert.add_argument(
        "--dataset", default=None, help="dataset whose test split verifies (default: the run's)"
    )
    convert.add_argument(
        "--reference-images",
        type=int,
        default=None,
        help="verify on this many test images (default: all)",
    )
    convert.add_argument("--version", default=None, help="version string for the manifest")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    convert.set_defaults(handler=cmd_convert)

    serve = commands.add_parser(
        "serve",
        help="run the BinBot server (API and published model) with gunicorn",
        description="Create the database and data folder if needed, publish the starter model "
        "on a fresh database, print an admin token on first start, then serve with gunicorn. "
        "DATABASE_URL, BINBOT_DATA_DIR and the other variables in the README configure it.",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=2, help="gunicorn workers (%(default)s)")
    serve.add_argument(
        "--new-admin-token", action="store_true", help="print a new admin token even if one exists"
    )
    serve.set_defaults(handler=cmd_serve, needs_tensorflow=False)

    worker = commands.add_parser(
        "worker",
        help="run queued retraining jobs (started by `binbot serve`)",
        description="Claim queued retraining jobs from the database and run them: train on the "
        "base dataset (BINBOT_BASE_DATASET) plus accepted corrections, score the candidate and "
        "the published model on the same test split, convert and register the candidate.",
    )
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.set_defaults(handler=cmd_worker, needs_tensorflow=False)  # imported per job

    predict = commands.add_parser(
        "predict",
        help="top classes for image files",
        description="Print the top classes with probabilities for each image.",
    )
    predict.add_argument("run_dir", help="a folder written by `binbot train`")
    predict.add_argument("images", nargs="+", metavar="IMAGE")
    predict.add_argument("--top", type=int, default=3, help="how many classes (%(default)s)")
    predict.set_defaults(handler=cmd_predict)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if getattr(args, "needs_tensorflow", True):
            _import_tensorflow_quietly()
        return args.handler(args)
    except BinbotError as exc:
        print(f"binbot: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("binbot: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`binbot ... | head`): stop quietly, as Unix tools do.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    raise SystemExit(main())

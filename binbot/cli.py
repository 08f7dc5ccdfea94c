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

from binbot.errors import BinbotError
from binbot.files import is_disk_full
from binbot.quiet_tensorflow import import_tensorflow_quietly

EXIT_USER_ERROR = 2


def whole_number(low: int, high: int):
    """An argparse type: a whole number from ``low`` to ``high``.

    Why bounds on every count: an out-of-range number otherwise reaches the code that uses it
    and fails there (a port past 65535 as a socket's OverflowError, a seed of -1 as numpy's, a
    token number past 64 bits as SQLite's), or does something nobody asked for (``--top -2``
    printed all classes but two, ``--workers 0`` served with no process to answer).
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text[:40]!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {value}")
        return value

    return parse


def fraction(low: float, high: float):
    """An argparse type: a number from ``low`` to ``high``. NaN is refused too: ``float``
    accepts "nan", and a NaN threshold used to match nothing without a word."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text[:40]!r}") from None
        if not low <= value <= high:  # also false for NaN
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, not {text[:40]}")
        return value

    return parse


PORT = whole_number(1, 65535)
ROW_ID = whole_number(1, 2**63 - 1)  # what the database holds (server.untrusted.ROW_ID_MAX)


def disk_full_message(exc: OSError) -> str:
    """Runs, reports, bundles and extracted datasets are written beside their place and moved
    in when whole, so a full disk leaves nothing half-written. A plain write names no file; a
    copy names its source first and the file it could not write second."""
    where = exc.filename2 or exc.filename
    return (
        f"{exc.strerror}" + (f" (writing {where})" if where else "") + ": the disk is full; "
        "nothing half-written was kept: free some space and run it again"
    )


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


def train_config(args: argparse.Namespace):
    from training.config import TrainConfig, train_settings

    return TrainConfig(**{s.name: getattr(args, s.name) for s in train_settings()})


def check_train(args: argparse.Namespace) -> None:
    from training.train import check_train_request

    check_train_request(args.dataset, Path(args.out), train_config(args), args.overwrite)


def cmd_train(args: argparse.Namespace) -> int:
    from training.train import train

    result = train(args.dataset, args.out, train_config(args), overwrite=args.overwrite, log=_log)
    if not args.skip_evaluation:
        from training.evaluate import evaluate_run

        try:
            evaluate_run(result.run_dir, result.dataset, log=_log)
        except OSError as exc:
            if not is_disk_full(exc):
                raise
            raise BinbotError(
                f"{exc.strerror}: the disk is full; the run at {result.run_dir} was written "
                f"whole, its evaluation was not: free some space and run `binbot evaluate "
                f"{result.run_dir}`"
            ) from None
    return 0


def check_evaluate(args: argparse.Namespace) -> None:
    from training.dataset import check_dataset_path
    from training.run_dir import check_run_folder

    check_run_folder(args.run_dir)
    if args.dataset is not None:
        check_dataset_path(args.dataset)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from training.evaluate import evaluate_run

    evaluate_run(args.run_dir, args.dataset, log=_log)
    return 0


# What the web app says for each verdict, as a prefix of the ranked kinds.
VERDICT_WORDS = {"known": "known", "unsure": "not sure", "unknown": "not recognised"}


def check_predict(args: argparse.Namespace) -> None:
    from training.predict import predictor_run_folder

    if predictor_run_folder(args.run_dir) is None:
        args.needs_tensorflow = False  # a bundle without its Keras model runs in Node (TF.js)
    # One missing photo among others is said in its place, after the model has loaded; when
    # none is there (a mistyped name), there is nothing to load it for.
    if not any(Path(image).exists() for image in args.images):
        names = ", ".join(args.images[:3]) + (", ..." if len(args.images) > 3 else "")
        raise BinbotError(f"image not found: {names}")


def cmd_predict(args: argparse.Namespace) -> int:
    from training.predict import load_predictor, predict_files

    run = load_predictor(args.run_dir)
    failures = 0
    for result in predict_files(run, [Path(p) for p in args.images], k=args.top):
        if isinstance(result, BinbotError):
            print(f"binbot: error: {result}", file=sys.stderr)
            failures += 1
            continue
        ranked = "  ".join(f"{label} {p:.1%}" for label, p in result.top)
        print(f"{result.path}: {VERDICT_WORDS[result.verdict]}: {ranked}", flush=True)
    return EXIT_USER_ERROR if failures else 0


def check_convert(args: argparse.Namespace) -> None:
    from conversion.convert import check_convert_request
    from training.dataset import check_dataset_path

    check_convert_request(
        args.run_dir, Path(args.out), args.quantization, args.version, args.overwrite
    )
    if args.dataset is not None:
        check_dataset_path(args.dataset)


def cmd_convert(args: argparse.Namespace) -> int:
    from conversion.config import convert_settings
    from conversion.convert import convert_run

    convert_run(
        args.run_dir,
        args.out,
        dataset=args.dataset,
        version=args.version,
        overwrite=args.overwrite,
        log=_log,
        **{s.name: getattr(args, s.name) for s in convert_settings()},
    )
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from server.serve import ServeOptions, listen_host, serve

    port = args.port or (8080 if args.front else 8000)
    options = ServeOptions(
        host=listen_host(args.host), port=port, workers=args.workers, threads=args.threads,
        retrain_workers=args.retrain_workers, front=args.front, https_port=args.https_port,
        new_token=args.new_admin_token,
    )  # fmt: skip
    return serve(options, _log)


def cmd_worker(args: argparse.Namespace) -> int:
    from server import create_app
    from server.jobs.worker import run_worker
    from server.provision import reaching_the_database

    def stop(_signum, _frame):
        raise KeyboardInterrupt  # SIGTERM (from `binbot serve`, systemd...) stops like Ctrl-C

    signal.signal(signal.SIGTERM, stop)
    app = create_app()
    try:
        with reaching_the_database(app):
            run_worker(app, once=args.once, log=_log)
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting is noise
        _log("worker stopped")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from server import create_app
    from server.config import masked_database_url
    from server.provision import (
        database_revision,
        newest_revision,
        provision,
        reaching_the_database,
    )

    app = create_app()
    _log(f"Database: {masked_database_url(app.config['SQLALCHEMY_DATABASE_URI'])}")
    if args.db_command == "upgrade":
        provision(app, starter=not args.no_starter, log=_log)
    else:
        with app.app_context(), reaching_the_database(app):
            revision, newest = database_revision(), newest_revision()
            behind = f" (this BinBot's newest: {newest})" if revision != newest else ""
            _log(f"Schema revision: {revision or 'none (not provisioned yet)'}{behind}")
    return 0


class Parser(argparse.ArgumentParser):
    """argparse with the CLI's one error style: one line, ``binbot: error: ...``, exit 2."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"binbot: error: {message} (see `{self.prog} --help`)\n")


def cmd_token(args: argparse.Namespace) -> int:
    from server import create_app
    from server.admin.tokens import (
        admin_token_exists,
        create_admin_token,
        list_tokens,
        revoke_token,
    )
    from server.provision import reaching_the_database
    from server.tables import utc_text

    app = create_app()
    with app.app_context(), reaching_the_database(app):
        if args.token_command == "new":
            _log(f"Admin token (shown once, keep it): {create_admin_token(args.note)}")
        elif args.token_command == "list":
            rows = list_tokens()
            if not rows:
                _log("No admin tokens: `binbot token new` makes one.")
            for row in rows:
                used = utc_text(row.last_used_at) if row.last_used_at else "never"
                _log(f"{row.id:4d}  created {utc_text(row.created_at)}  last used {used}"
                     + (f"  {row.note}" if row.note else ""))  # fmt: skip
        elif not revoke_token(args.id):
            raise BinbotError(f"no admin token {args.id} (see `binbot token list`)")
        else:
            _log(f"Token {args.id} revoked; its console sessions have ended.")
            if not admin_token_exists():
                _log("No admin token is left: nobody can log in until `binbot token new`.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="binbot",
        description="BinBot: recognise e-waste from a photo. Train, evaluate and use the model.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in (
        add_dataset_command, add_train_command, add_evaluate_command, add_convert_command,
        add_serve_command, add_worker_command, add_db_command, add_token_command,
        add_predict_command,
    ):  # fmt: skip
        add(commands)
    return parser


def add_dataset_command(commands) -> None:
    from training.config import train_settings

    seed = next(s for s in train_settings() if s.name == "seed").spec  # the split's seed
    dataset = commands.add_parser("dataset", help="look at a dataset before training on it")
    actions = dataset.add_subparsers(dest="dataset_command", metavar="ACTION", required=True)
    inspect = actions.add_parser(
        "inspect",
        help="structure, class balance, sizes, bad files, samples and duplicates",
        description="Print and write (JSON + PNG) what a dataset holds: splits, classes, "
        "per-class counts, imbalance, image sizes, undecodable files, sample images and "
        "duplicate images within and across splits.",
    )
    inspect.add_argument("path", help="a zip file or a folder of class folders")
    inspect.add_argument("--out", default="reports/dataset", help="output folder (%(default)s)")
    inspect.add_argument(
        "--near-threshold", type=whole_number(0, 64), default=10,
        help="max perceptual-hash distance for near duplicates (%(default)s)",
    )  # fmt: skip
    inspect.add_argument(
        "--min-correlation", type=fraction(-1.0, 1.0), default=0.90,
        help="min thumbnail correlation to confirm a near duplicate (%(default)s)",
    )  # fmt: skip
    inspect.add_argument(
        "--seed", type=whole_number(int(seed.minimum), int(seed.maximum)), default=42,
        help="seed of the split for flat class folders (%(default)s)",
    )  # fmt: skip
    inspect.set_defaults(handler=cmd_dataset_inspect, needs_tensorflow=False)


def add_train_command(commands) -> None:
    from training.config import train_settings
    from training.settings import add_arguments

    train = commands.add_parser(
        "train",
        help="train a classifier (two phases) and evaluate it",
        description="Train MobileNetV2 (ImageNet weights) with a small head: first the head on "
        "the frozen backbone, then the top of the backbone at a low learning rate. Writes the "
        "model, labels, config, dataset fingerprint, history, curves and evaluation to --out.",
    )
    train.add_argument("dataset", help="a zip file or a folder of class folders")
    train.add_argument("--out", required=True, help="run folder to write")
    add_arguments(train, train_settings())
    train.add_argument("--overwrite", action="store_true", help="replace an existing run")
    train.add_argument(
        "--skip-evaluation", action="store_true", help="do not evaluate on the test split"
    )
    train.set_defaults(handler=cmd_train, check=check_train)


def add_evaluate_command(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="score a run on the test split and write its report",
        description="Test accuracy, per-class report, confusion matrix, misclassified images, "
        "metrics.json and report.md, written to RUN_DIR/evaluation.",
    )
    evaluate.add_argument("run_dir", help="a folder written by `binbot train`")
    evaluate.add_argument(
        "dataset", nargs="?", default=None,
        help="dataset to evaluate on (default: the one the run used)",
    )  # fmt: skip
    evaluate.set_defaults(handler=cmd_evaluate, check=check_evaluate)


def add_convert_command(commands) -> None:
    from conversion.config import convert_settings
    from training.settings import add_arguments

    convert = commands.add_parser(
        "convert",
        help="turn a run into a verified, quantized TF.js graph model with a manifest",
        description="Export the run's model as a SavedModel, convert it to a TF.js graph "
        "model, run it in TF.js (Node, wasm) on the test split and compare with Keras. Without "
        "--quantize, uint8, float16 and float32 are tried smallest first, and the first whose "
        "accuracy loss against Keras is not significant (exact McNemar test, p >= 0.05) is "
        "kept. Fails (exit 2, no manifest) when the converted model disagrees with Keras.",
    )
    convert.add_argument("run_dir", help="a folder written by `binbot train`")
    convert.add_argument("--out", required=True, help="bundle folder to write")
    add_arguments(convert, convert_settings())
    convert.add_argument(
        "--dataset", default=None, help="dataset whose test split verifies (default: the run's)"
    )
    convert.add_argument("--version", default=None, help="version string for the manifest")
    convert.add_argument("--overwrite", action="store_true", help="replace an existing bundle")
    convert.set_defaults(handler=cmd_convert, check=check_convert)


def add_serve_command(commands) -> None:
    serve = commands.add_parser(
        "serve",
        help="run the BinBot server (API and published model) with gunicorn",
        description="Upgrade the database to the current schema, publish the starter model "
        "on a fresh database, print an admin token on first start, then serve with gunicorn "
        "and one retraining worker. DATABASE_URL, BINBOT_DATA_DIR and the other variables in "
        "the README configure it.",
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    serve.add_argument(
        "--port", type=PORT, default=None, help="HTTP port (8000; with --front: 8080)"
    )
    serve.add_argument(
        "--workers", type=whole_number(1, 64), default=2, help="gunicorn processes (%(default)s)"
    )
    serve.add_argument(
        "--threads", type=whole_number(1, 64), default=4, help="threads each (%(default)s)"
    )
    serve.add_argument(
        "--retrain-workers",
        type=whole_number(0, 16),
        default=1,
        help="retraining workers (%(default)s)",
    )
    serve.add_argument(
        "--front", action="store_true",
        help="put nginx with HTTPS before gunicorn (production; see the README)",
    )  # fmt: skip
    serve.add_argument("--https-port", type=PORT, default=8443, help="with --front (%(default)s)")
    serve.add_argument(
        "--new-admin-token", action="store_true", help="print a new admin token even if one exists"
    )
    serve.set_defaults(handler=cmd_serve, needs_tensorflow=False)


def add_worker_command(commands) -> None:
    worker = commands.add_parser(
        "worker",
        help="run queued retraining jobs (started by `binbot serve`)",
        description="Claim queued retraining jobs from the database and run them: train on the "
        "base dataset (BINBOT_BASE_DATASET) plus accepted corrections, score the candidate and "
        "the published model on the same test split, convert and register the candidate.",
    )
    worker.add_argument("--once", action="store_true", help="run at most one job, then exit")
    worker.set_defaults(handler=cmd_worker, needs_tensorflow=False)  # imported per job


def add_db_command(commands) -> None:
    db = commands.add_parser(
        "db",
        help="bring the database to the current schema (migrations) and publish a first model",
        description="DATABASE_URL picks the database (default: SQLite in the instance folder). "
        "`upgrade` applies every migration it lacks (a database made before migrations is "
        "adopted, its rows kept) and publishes the starter model when none is published.",
    )
    actions = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    upgrade = actions.add_parser(
        "upgrade", help="migrate to the latest schema; publish a first model"
    )
    upgrade.add_argument(
        "--no-starter", action="store_true", help="do not publish the starter model"
    )
    actions.add_parser("current", help="print the schema revision the database is at")
    db.set_defaults(handler=cmd_db, needs_tensorflow=False)


def add_token_command(commands) -> None:
    token = commands.add_parser(
        "token",
        help="admin tokens: make one, list them, revoke one",
        description="Admin tokens open the admin API and console. Revoking one ends every "
        "console session opened with it at once.",
    )
    actions = token.add_subparsers(dest="token_command", metavar="ACTION", required=True)
    new = actions.add_parser("new", help="make a token (shown once)")
    new.add_argument(
        "--note", metavar="TEXT", help="whose it is or what it is for (shown by `list`)"
    )
    actions.add_parser("list", help="every token's number, dates of making and last use, note")
    revoke = actions.add_parser("revoke", help="revoke a token by its number")
    revoke.add_argument(
        "id", type=ROW_ID, help="the token's number, as `binbot token list` shows it"
    )
    token.set_defaults(handler=cmd_token, needs_tensorflow=False)


def add_predict_command(commands) -> None:
    predict = commands.add_parser(
        "predict",
        help="top classes for image files",
        description="Print the top classes with probabilities for each image.",
    )
    predict.add_argument(
        "run_dir",
        help="a folder written by `binbot train`, or a bundle by `binbot convert` (one without "
        "its keras/ model, such as models/starter, runs in TF.js as phones run it)",
    )
    predict.add_argument(
        "images", nargs="+", metavar="IMAGE", help="image files, or folders of them"
    )
    predict.add_argument(
        "--top", type=whole_number(1, 1000), default=3, help="how many classes (%(default)s)"
    )
    predict.set_defaults(handler=cmd_predict, check=check_predict)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if check := getattr(args, "check", None):
            # What the arguments and files alone can refuse is said at once, not after
            # TensorFlow's import (9 s on this machine on a slow day).
            check(args)
        if getattr(args, "needs_tensorflow", True):
            import_tensorflow_quietly()
        return args.handler(args)
    except BinbotError as exc:
        print(f"binbot: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except OSError as exc:
        if is_disk_full(exc):
            print(f"binbot: error: {disk_full_message(exc)}", file=sys.stderr)
            return EXIT_USER_ERROR
        if exc.filename is None:
            raise
        # A folder that cannot be made or written (--out under a file, a read-only disk, no
        # permission, a full disk): the user's to fix, so a line, not a traceback.
        print(f"binbot: error: {exc.filename}: {exc.strerror}", file=sys.stderr)
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

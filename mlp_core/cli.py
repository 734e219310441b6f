"""Command line: `python -m mlp_core train | evaluate | predict`.

Every error a user can cause ends as one line on stderr and a nonzero exit.
"""

import argparse
import json
import sys
import time
from dataclasses import fields
from pathlib import Path

from .checkpoint import ModelFileError, load_checkpoint, model_filename, save_checkpoint
from .data import DataError, load_mnist
from .devices import DeviceError, resolve_device
from .learner import Callback, DivergedError
from .optim import OPTIMIZERS
from .recipe import INITS, SCHEDULES, Recipe, RecipeError

USER_ERRORS = (DataError, ModelFileError, RecipeError, DeviceError, DivergedError)


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"error: {message} (see --help)\n")


class ProgressBar(Callback):
    """One line per epoch on stderr: a bar, the loss, samples/s, then test accuracy."""

    def __init__(self, stream=sys.stderr, width=24):
        self.stream, self.width = stream, width
        self.tty = stream.isatty()

    def before_epoch(self, learn):
        self.t0, self.seen = time.perf_counter(), 0

    def line(self, learn, done: float, tail: str = "") -> str:
        n = int(done * self.width)
        rate = self.seen / max(1e-9, time.perf_counter() - self.t0)
        return (
            f"epoch {learn.epoch + 1}/{learn.epochs} [{'#' * n}{'.' * (self.width - n)}] "
            f"loss {learn.loss:.4f}  {rate:,.0f} samples/s{tail}"
        )

    def after_batch(self, learn):
        self.seen += learn.batch_size
        if self.tty and learn.iter % 20 == 0:
            self.stream.write("\r" + self.line(learn, learn.iter / len(learn.train)))
            self.stream.flush()

    def after_epoch(self, learn):
        acc = (
            f"  test accuracy {learn.test_accuracy:.4f}" if learn.test_accuracy is not None else ""
        )
        self.stream.write(("\r" if self.tty else "") + self.line(learn, 1.0, acc) + "\n")
        self.stream.flush()


def add_recipe_flags(p: argparse.ArgumentParser) -> None:
    d = Recipe()
    p.add_argument(
        "--hidden",
        type=int,
        nargs="+",
        default=list(d.hidden),
        help=f"hidden layer sizes (default: {' '.join(map(str, d.hidden))})",
    )
    p.add_argument(
        "--init",
        choices=INITS,
        default=d.init,
        help=f"initial weights (default: {d.init})",
    )
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default=d.optimizer,
        help=f"basic = the notebook's BasicOptim (default: {d.optimizer})",
    )
    p.add_argument("--lr", type=float, default=d.lr, help=f"learning rate (default: {d.lr})")
    p.add_argument(
        "--momentum", type=float, default=d.momentum, help=f"sgd momentum (default: {d.momentum})"
    )
    p.add_argument(
        "--weight-decay",
        type=float,
        default=d.weight_decay,
        help=f"sgd/adam weight decay (default: {d.weight_decay})",
    )
    p.add_argument(
        "--schedule",
        choices=SCHEDULES,
        default=d.schedule,
        help=f"learning-rate schedule (default: {d.schedule})",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=d.batch_size,
        help=f"images per step (default: {d.batch_size})",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=d.epochs,
        help=f"passes over the training set (default: {d.epochs})",
    )
    p.add_argument(
        "--augment",
        action=argparse.BooleanOptionalAction,
        default=d.augment,
        help=f"random shifts and rotations of training images (default: {d.augment})",
    )
    p.add_argument("--seed", type=int, default=d.seed, help=f"random seed (default: {d.seed})")
    p.add_argument(
        "--device", default=d.device, help=f"cpu, cuda, cuda:N or mps (default: {d.device})"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m mlp_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model on MNIST and save it")
    add_recipe_flags(t)
    t.add_argument(
        "--data-dir", help="folder holding MNIST/raw (default: $MNIST_ROOT, else ./data)"
    )
    t.add_argument("--out", help="model file to write (default: models/<recipe>-<accuracy>.pt)")
    t.add_argument("--json", action="store_true", help="print one JSON object at the end")
    t.add_argument(
        "--eager",
        action="store_true",
        help="on CUDA, the readable eager loop instead of the step captured as a CUDA graph "
        "(default: captured on CUDA; other devices always run eagerly)",
    )

    e = sub.add_parser("evaluate", help="score a model file on the MNIST test split")
    e.add_argument("--model", required=True, help="model file (.pt)")
    e.add_argument(
        "--data-dir", help="folder holding MNIST/raw (default: $MNIST_ROOT, else ./data)"
    )
    e.add_argument("--json", action="store_true", help="print the result as JSON")

    p = sub.add_parser("predict", help="classify image files (PNG, JPEG, BMP, GIF, WEBP)")
    p.add_argument(
        "--model", default="models/default.pt", help="model file (default: models/default.pt)"
    )
    p.add_argument("files", nargs="+", help="image files")
    p.add_argument(
        "--json",
        action="store_true",
        help="per file: the digit and all ten probabilities, or the error",
    )
    return parser


def cmd_train(args) -> int:
    names = {f.name for f in fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in vars(args).items() if k in names})
    recipe.validate()
    resolve_device(recipe.device)  # a bad device fails before MNIST is read
    from .train import train

    cbs = [] if args.json else [ProgressBar()]
    learn, record = train(recipe, args.data_dir, cbs=cbs, eager=True if args.eager else None)
    out = (
        Path(args.out) if args.out else Path("models") / model_filename(recipe, learn.test_accuracy)
    )
    save_checkpoint(out, learn.model, recipe, record)
    result = {**record, "out": str(out), "recipe": recipe.to_dict()}
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"Test accuracy: {record['test_accuracy']:.4f} after {record['epochs']} epochs "
            f"in {record['seconds']:.1f} s on {record['device']}; saved {out}"
        )
    return 0


def cmd_evaluate(args) -> int:
    from .metrics import evaluate

    ckpt = load_checkpoint(args.model)
    result = {"model": args.model, **evaluate(ckpt.model, load_mnist(False, args.data_dir))}
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"Test accuracy: {result['accuracy']:.4f} on {result['n']} images")
    print(
        "Per class:  "
        + "  ".join(f"{d}: {a:.3f}" for d, a in enumerate(result["per_class_accuracy"]))
    )
    print("Confusion matrix (rows: true digit, columns: predicted):")
    print("     " + "".join(f"{d:>6}" for d in range(10)))
    for d, row in enumerate(result["confusion_matrix"]):
        print(f"{d:>5}" + "".join(f"{c:>6}" for c in row))
    return 0


def cmd_predict(args) -> int:
    from .metrics import predict_probs
    from .preprocess import ImageError, preprocess

    model = load_checkpoint(args.model).model
    results, ok = [], True
    for name in args.files:
        try:
            probs = predict_probs(model, preprocess(Path(name)).tensor)[0].tolist()
            digit = max(range(10), key=probs.__getitem__)
            results.append({"file": name, "digit": digit, "probabilities": probs})
        except (ImageError, OSError) as e:
            ok = False
            msg = str(e) if isinstance(e, ImageError) else f"Cannot read {name}: {e.strerror}."
            results.append({"file": name, "error": msg})
    for r in results if not args.json else []:
        if "error" in r:
            print(f"{r['file']}: error: {r['error']}")
        else:
            print(f"{r['file']}: {r['digit']} ({r['probabilities'][r['digit']]:.1%})")
    if args.json:
        print(json.dumps(results))
    return 0 if ok else 1


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict}[args.command](
            args
        )
    except USER_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130

"""Command line: `python -m mlp_core train | evaluate | predict`.

Every error a user can cause ends as one line on stderr and a nonzero exit.
"""

import argparse
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from .checkpoint import ModelFileError, load_checkpoint, save_checkpoint
from .data import Split, load_mnist
from .devices import resolve_device
from .errors import UserError
from .learner import Callback
from .recipe import Recipe
from .service import budget, model_filename
from .vision.compose import with_cut_digits
from .vision.pairs import PairRecipe
from .vision.verifier import VerifierRecipe


class CliError(UserError):
    """A command-line choice that cannot work (e.g. --out); the message says why."""


MNIST_TRAIN = 60_000  # training images: the budget is priced before MNIST is read


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        self.exit(2, f"error: {message} (see --help)\n")


class ProgressBar(Callback):
    """One line per epoch on stderr: a bar, the loss, samples/s, then test accuracy."""

    def __init__(self, stream=None, width=24):
        self.stream, self.width = stream or sys.stderr, width  # stderr as it is now, not at import
        self.tty = self.stream.isatty()

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


def bounded(f):
    """An argparse type for a `strict` field: a whole number within its declared bounds,
    refused by argparse (exit 2) otherwise; torch could not even take it."""
    low, high = f.metadata["low"], f.metadata["high"]

    def parse(text: str) -> int:
        n = int(text)  # a ValueError becomes argparse's "invalid ... value"
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(
                f"the {f.name} must be from {low} to {high}, got {text}"
            )
        return n

    parse.__name__ = f.name  # argparse names the type in its message
    return parse


def add_recipe_flags(p: argparse.ArgumentParser) -> None:
    """A flag per Recipe field, made from its declaration: help, choices, type, default."""
    for f in fields(Recipe):
        m, default = f.metadata, f.default
        shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
        text = m["help"].replace("%", "%%")  # argparse formats help with %: "15%" is text
        kw = dict(default=default, help=f"{text} (default: {shown})")
        if f.type == tuple[int, ...]:
            kw.update(type=int, nargs="*", default=list(default))  # none: a linear model
        elif f.type is bool:
            kw.update(action=argparse.BooleanOptionalAction)
        elif "choices" in m:
            kw.update(choices=m["choices"])
        elif f.type in (int, float):
            kw.update(type=bounded(f) if m.get("strict") else f.type)
        p.add_argument("--" + f.name.replace("_", "-"), **kw)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="python -m mlp_core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    t = sub.add_parser("train", help="train a model on MNIST and save it")
    add_recipe_flags(t)
    t.add_argument(
        "--data-dir", help="folder holding MNIST/raw (default: $MNIST_ROOT, else ./data)"
    )
    t.add_argument(
        "--out",
        help="model file to write; an existing file is replaced only if it is a model file "
        "(default: models/<recipe>_acc<accuracy>.pt)",
    )
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
        "--number",
        action="store_true",
        help="read each file as a number of up to 12 digits (default: one digit per file)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="per file: the digit and all ten probabilities, or the error",
    )
    judges = (
        ("train-verifier", VerifierRecipe, "verifier",
         "train the verifier that tells one whole digit from parts and pairs (numbers)"),
        ("train-pairs", PairRecipe, "pairs",
         "train the pair reader that reads two overlapping digits at once (numbers)"),
    )  # fmt: skip
    for command, recipe, name, about in judges:
        v = sub.add_parser(command, help=about)
        for f in fields(recipe):
            default = f.default
            if f.name == "hidden":
                v.add_argument(
                    "--hidden",
                    type=int,
                    nargs="+",
                    default=list(default),
                    help=f"hidden layer sizes (default: {' '.join(map(str, default))})",
                )
            else:
                v.add_argument("--" + f.name.replace("_", "-"), type=type(default),
                               default=default, help=f"(default: {default})")  # fmt: skip
        v.add_argument(
            "--data-dir", help="folder holding MNIST/raw (default: $MNIST_ROOT, else ./data)"
        )
        v.add_argument("--out", default=f"models/{name}.pt", help=f"(default: models/{name}.pt)")
        if name == "pairs":
            v.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                           help="processes cutting the numbers; the same model for any number "
                           "(default: one per core)")  # fmt: skip
    return parser


def check_out(out: Path) -> None:
    """Refuse an --out that saving would fail on, or that would destroy a file not ours.

    Called before training, so a bad place costs nothing. The folder is probed with the
    same temporary name save_checkpoint writes first, so a name too long for it fails here.
    """
    try:
        if out.is_dir():
            raise CliError(f"--out {out} is a folder; name a file in it, e.g. {out / 'model.pt'}.")
        if out.exists() or out.is_symlink():
            try:
                load_checkpoint(out)  # a model file of ours may be replaced, nothing else
            except ModelFileError:
                raise CliError(
                    f"{out} exists and is not an mlp_core model file; it was left untouched "
                    "(choose another --out)."
                ) from None
        folders = (out.parent, *out.parent.parents)
        created = [d for d in folders if not d.exists()]
        above = next(d for d in folders if d.exists())
        if not above.is_dir():
            raise CliError(f"Cannot write the model file {out}: {above} is a file, not a folder.")
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
            os.close(fd)
            os.unlink(tmp)
        finally:  # leave no empty folders behind if training fails; saving makes them again
            for d in created:
                with contextlib.suppress(OSError):
                    d.rmdir()
    except OSError as e:
        raise CliError(f"Cannot write the model file {out}: {e.strerror or e}.") from None


def os_reason(e: Exception) -> str:
    """The system's words for a failed write: torch.save reports a full disk as a
    RuntimeError ("enforce fail ... unexpected pos") whose context is the OSError."""
    cause = e if isinstance(e, OSError) else e.__context__
    return getattr(cause, "strerror", None) or one_line(str(e))


def default_out(recipe: Recipe, test_accuracy: float | None) -> Path:
    return Path("models") / model_filename(recipe, test_accuracy)


def cut_data(recipe: Recipe, data_dir, log) -> tuple[Split, Split]:
    """MNIST's splits, the training one followed by the digits cut from the recipe's
    cut_numbers composed numbers (minutes: 30-50 s per 1,000 numbers on a 2-core CPU)."""
    train, test = load_mnist(True, data_dir), load_mnist(False, data_dir)
    log(f"Cutting digits out of {recipe.cut_numbers:,} composed numbers...")
    more = with_cut_digits(train, recipe.cut_numbers, recipe.seed)
    log(f"{len(more) - len(train):,} digits cut: {len(more):,} pictures to learn from.")
    return more, test


def cmd_train(args) -> int:
    names = {f.name for f in fields(Recipe)}
    recipe = Recipe(**{k: v for k, v in vars(args).items() if k in names})
    recipe.validate()
    resolve_device(recipe.device)  # a bad device fails before MNIST is read
    budget.check(recipe, MNIST_TRAIN, budget.CLI_LIMITS)  # what cannot fit in memory, refused
    # the default name holds the accuracy, unknown yet; 0.0 gives a name of the same length
    check_out(Path(args.out) if args.out else default_out(recipe, 0.0))
    from . import fast  # noqa: F401  (plugs the captured CUDA step into training)
    from .train import train

    cbs = [] if args.json else [ProgressBar()]
    data = None
    if recipe.cut_numbers:
        data = cut_data(recipe, args.data_dir, (lambda _: None) if args.json else print)
    learn, record = train(recipe, args.data_dir, cbs, eager=True if args.eager else None, data=data)
    out = Path(args.out) if args.out else default_out(recipe, learn.test_accuracy)
    if not args.out:
        check_out(out)  # the final name may now belong to someone else's file
    try:
        save_checkpoint(out, learn.model, recipe, record)
    except (OSError, RuntimeError) as e:  # disk full, permissions changed during the run...
        raise CliError(
            f"Training finished but the model could not be saved to {out}: {os_reason(e)}."
        ) from None
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
    from .vision import ImageError, preprocess, surer, verdict

    model = load_checkpoint(args.model).model
    if args.number:
        return predict_numbers(model, args.files, args.json)
    results, ok = [], True
    for name in args.files:
        try:
            found = preprocess(Path(name))
            prep = surer(model, [found])[0]
            probs = predict_probs(model, prep.tensor)[0].tolist()
            digit = max(range(10), key=probs.__getitem__)
            results.append({"file": name, "digit": digit, "probabilities": probs,
                            "side_by_side": found.side_by_side})  # fmt: skip
        except (ImageError, OSError) as e:
            ok = False
            msg = str(e) if isinstance(e, ImageError) else f"Cannot read {name}: {e.strerror}."
            results.append({"file": name, "error": msg})
    for r in results if not args.json else []:
        if "error" in r:
            print(f"{r['file']}: error: {r['error']}")
        else:
            n = r["side_by_side"]  # a picture of a number, read as one digit: say so
            note = f"  ({n} marks side by side: --number reads a number)" if n > 1 else ""
            print(f"{r['file']}: {verdict(r['probabilities'])}{note}")
    if args.json:
        print(json.dumps(results))
    return 0 if ok else 1


def one_line(text: str) -> str:
    """A message on one line: each failure is promised to be exactly one line of stderr."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def predict_numbers(model, files: list[str], as_json: bool) -> int:
    """`predict --number`: per file the number and a line per digit, or one error line."""
    from .vision import ImageError, read_number

    results, ok = [], True
    for name in files:
        try:
            number = read_number(model, Path(name))
            results.append({"file": name, **number.as_dict()})
            lines = [f"{name}: {number.summary()}", *(f"  {x}" for x in number.lines())]
        except (ImageError, OSError) as e:
            ok = False
            msg = str(e) if isinstance(e, ImageError) else f"Cannot read {name}: {e.strerror}."
            results.append({"file": name, "error": msg})
            lines = [f"{name}: error: {msg}"]
        if not as_json:
            print("\n".join(lines))
    if as_json:
        print(json.dumps(results))
    return 0 if ok else 1


def judge_recipe(args, recipe_cls, what: str):
    """The recipe of a verifier or pair reader from its command's arguments, checked."""
    names = {f.name for f in fields(recipe_cls)}
    recipe = recipe_cls(**{k: v for k, v in vars(args).items() if k in names})
    recipe.hidden = tuple(recipe.hidden)
    if (
        not all(1 <= n <= 4096 for n in recipe.hidden)
        or min(recipe.numbers, recipe.epochs, recipe.batch_size) < 1
        or not recipe.lr > 0
        or not 0 <= getattr(recipe, "close", 0) <= 1
    ):
        raise CliError(
            f"The {what}'s sizes, counts and learning rate must be positive (--close from 0 to 1)."
        )
    return recipe


def cmd_train_verifier(args) -> int:
    from .vision.verifier import save_verifier, train_verifier

    recipe = judge_recipe(args, VerifierRecipe, "verifier")
    train_images = load_mnist(True, args.data_dir).images.numpy()
    test_images = load_mnist(False, args.data_dir).images.numpy()
    model, record = train_verifier(recipe, train_images, test_images)
    out = save_verifier(args.out, model, recipe, record)
    print(
        f"Verifier: {record['test_accuracy']:.4f} of {record['test_candidates']} test candidates "
        f"right (whole digits kept {record['whole_recall']:.4f}, parts and pairs refused "
        f"{record['part_rejected']:.4f}) in {record['seconds']:.0f} s; saved {out}"
    )
    return 0


def cmd_train_pairs(args) -> int:
    from .vision.pairs import save_pair_reader, train_pair_reader

    recipe = judge_recipe(args, PairRecipe, "pair reader")
    if args.workers < 1:
        raise CliError("--workers must be at least 1 (processes cutting the numbers).")
    train, test = load_mnist(True, args.data_dir), load_mnist(False, args.data_dir)
    model, record = train_pair_reader(recipe, train, test, workers=args.workers)
    out = save_pair_reader(args.out, model, recipe, record)
    print(
        f"Pair reader: of {record['test_pairs']} test pairs {record['pairs_found']:.4f} found "
        f"and {record['both_right']:.4f} read right (both digits); other candidates refused "
        f"{record['others_refused']:.4f}; in {record['seconds']:.0f} s; saved {out}"
    )
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict,
                    "train-verifier": cmd_train_verifier,
                    "train-pairs": cmd_train_pairs}  # fmt: skip
        return commands[args.command](args)
    except UserError as e:  # a sentence for the user: no type, no traceback
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # a bug or the machine (memory, disk): one line that still names it
        detail = one_line(str(e))
        print(f"error: {type(e).__name__}{': ' + detail if detail else ''}", file=sys.stderr)
        return 1

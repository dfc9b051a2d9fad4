"""What the commands share on the command line: argument types that refuse bad values with one line, the
parser that prints that line, and the options several commands take, each declared once (argparse parent
parsers, built fresh per command so that one command's defaults never leak into another's)."""

from __future__ import annotations

import argparse
import re
import sys

from vaegan_dist.data.convert import MAX_WORKERS, SIZE_RANGE

MAX_SHARD_SAMPLES = 100_000  # a shard is held in memory until it is full
MAX_GRID = 1024  # images in a sample or reconstruction grid
MAX_EVAL = 20_000  # held-out images of one evaluation (precision/recall hold N x N distances)
CHECKPOINT_HELP = "state.pt, a checkpoint directory or a run directory"


def int_range(low: int, high: int | None = None):
    """An argparse type: an integer in low..high (high None: no upper bound)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text.strip()!r} is not an integer") from None
        if high is None and value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be at least {low}")
        if high is not None and not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not in {low}..{high}")
        return value

    return parse


def finite_float(text: str) -> float:
    """An argparse type: a finite number (nan and inf are refused here, not deep in a computation)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text.strip()!r} is not a finite number")
    return value


def app_name(text: str) -> str:
    """A Serve application name: letters, digits, '-', '_' and '.', as a name in a config file and a log."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}", text):
        raise argparse.ArgumentTypeError(f"{text[:70]!r} is not a name of letters, digits, '.', '_' and '-' (at "
                                         "most 63, starting with a letter or digit)")
    return text


def host_name(text: str) -> str:
    """A name the Host header may give (``--allow-host``): a host name or IP address without a port, or ``*``."""
    name = text.strip()
    if name == "*":
        return name
    bare = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    if not bare or not re.fullmatch(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:.]+", bare) or (":" in bare and bare.count(":") < 2):
        raise argparse.ArgumentTypeError(f"{text[:70]!r} is not a host name or IP address without a port (or *)")
    return bare.lower()


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line naming the argument (argparse prints its whole usage block first), and
    negative numbers that argparse would take for options (``--scale -inf``, ``-1e3``) passed as values."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        marked = [_as_value(a) for a in args]
        parsed, rest = super().parse_known_args(marked, namespace)
        changed = {m for m, a in zip(marked, args, strict=True) if m != a}
        if changed:  # a text option keeps what was typed: `--title -1` is "-1", not " -1"
            for name, value in vars(parsed).items():
                setattr(parsed, name, _unmarked(value, changed))
            rest = [_unmarked(r, changed) for r in rest]
        return parsed, rest


def _unmarked(value, changed: set[str]):
    if isinstance(value, str) and value in changed:
        return value[1:]
    if isinstance(value, list):
        return [_unmarked(v, changed) for v in value]
    return value


def _as_value(arg: str) -> str:
    """argparse reads only ``-1`` and ``-.5`` as negative numbers; every other token starting with '-' is an
    option, so ``--scale -1e3`` or ``-inf`` fails with "expected one argument" before our type can say what
    is wrong. A leading space makes such a token a value (float() strips it; no option of ours is numeric)."""
    if arg[:1] == "-" and not arg.startswith("--"):
        try:
            float(arg)
        except ValueError:
            return arg
        return " " + arg
    return arg


def _options() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(add_help=False)


# ------------------------------------------------------------------------- options of a trained model


def checkpoint_option(what: str = "", many: bool = False) -> argparse.ArgumentParser:
    """``--checkpoint``: one model, or with ``many`` one or more (``what`` says which kind, or what each is)."""
    options = _options()
    options.add_argument("--checkpoint", required=True, help=f"{what}{': ' if what else ''}{CHECKPOINT_HELP}",
                         **({"action": "extend", "nargs": "+", "metavar": "C"} if many else {}))
    return options


def data_options(split: str | None = None, what: str = "") -> argparse.ArgumentParser:
    """``--data`` (default: what the run trained on) and, unless ``split`` is None, ``--split``: for commands
    that read a run's images."""
    options = _options()
    options.add_argument("--data", default=None, help="shard directory or manifest.json (default: what the run "
                                                      "trained on)")
    if split is not None:
        options.add_argument("--split", default=split, help=f"the split {what} (default {split})")
    return options


def evaluator_option() -> argparse.ArgumentParser:
    options = _options()
    options.add_argument("--evaluator", default="", help="an evaluator file (default: the cached one for the data; "
                                                         "`vaegan-dist evaluator train` makes one)")
    return options


def json_option(what: str) -> argparse.ArgumentParser:
    options = _options()
    options.add_argument("--json", default=None, metavar="OUT", help=f"also write {what} to this JSON file")
    return options


def num_option(default: int, what: str, low: int = 8) -> argparse.ArgumentParser:
    """``--num``: how many held-out images a command reads (at most MAX_EVAL)."""
    options = _options()
    options.add_argument("--num", type=int_range(low, MAX_EVAL), default=default,
                         help=f"{what} ({low}..{MAX_EVAL}, default {default})")
    return options


def seed_option(what: str) -> argparse.ArgumentParser:
    options = _options()
    options.add_argument("--seed", type=int_range(0, 2**63 - 1), default=0, help=f"seed of {what} (default 0)")
    return options


def png_out_option(what: str) -> argparse.ArgumentParser:
    options = _options()
    options.add_argument("--out", required=True, help=f"PNG file for {what}")
    return options


# ------------------------------------------------------------------------------ options of `prepare`


def shard_options(encoding: bool = True) -> argparse.ArgumentParser:
    """How a data set is written: images per shard, processes, and (for photos) the stored image format."""
    options = _options()
    options.add_argument("--shard-samples", type=int_range(1, MAX_SHARD_SAMPLES), default=1000,
                         help="images per shard (default 1000)")
    options.add_argument("--workers", type=int_range(1, MAX_WORKERS), default=None,
                         help=f"processes (default: CPU count, at most {MAX_WORKERS})")
    if encoding:
        options.add_argument("--encoding", default="jpg", choices=("jpg", "png", "raw"),
                             help="stored image format (default jpg; see bench/RESULTS.md)")
    return options


def photo_size_option() -> argparse.ArgumentParser:
    options = _options()
    options.add_argument("--size", type=int_range(*SIZE_RANGE), default=64,
                         help=f"image side in pixels, {SIZE_RANGE[0]}..{SIZE_RANGE[1]} (default 64)")
    return options

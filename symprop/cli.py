"""The `symprop` command line: list, derive, generate, check, train.

Exit status: 0 success, 1 a check found a difference (or a training run diverged), 2 bad input
(usage, spec, values, a file that cannot be read or written). Errors are one line on stderr,
never a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import importlib.util
import inspect
import os
import shlex
import sys
from pathlib import Path

import numpy as np

from . import symbolic
from .symbolic.names import module_name_problem
from .symbolic.spec import SpecError
from .symbolic.trace import TraceError

from ._child import ImportFailed, OsExit, describe, import_function
from .check import CALLING_CONVENTION, CheckError, check
from .codegen import files
from .codegen.module import BACKENDS
from .errors import UsageError
from .limits import require_memory
from . import train as training
from .reference import TorchMissing
from .sandbox import TIMEOUT, ChildFunction, Failed, TimeLimit, time_limit


def main(argv=None) -> int:
    try:
        parser = _parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as exit:  # --help, --version and usage errors, already printed by argparse
            return exit.code or 0
        if not hasattr(args, "run"):  # `symprop` alone
            parser.print_help()
            return 0
        return _run(args)
    except KeyboardInterrupt:  # Ctrl-C: every writer removes its temporary files on the way out
        interrupted()


def interrupted():
    """Exit 130 with one line. By `os._exit`: CPython 3.11 exits by SIGINT instead (status -2)
    once a KeyboardInterrupt has passed through code run from a string (a dataclass's methods
    are), even one that was caught; the writers have removed their temporary files already."""
    print("symprop: interrupted", file=sys.stderr)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(130)


def _run(args) -> int:
    try:
        return args.run(args)
    except (SpecError, UsageError, CheckError, TraceError) as error:
        print(f"symprop: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except OSError as error:  # a file that cannot be read or written: a full disk, no permission
        print(f"symprop: {_describe(error)}", file=sys.stderr)
        return 2


def _describe(error: OSError) -> str:
    """'FILE: reason' in one line (the writers in symprop.codegen.files name the file they wrote)."""
    reason = error.strerror or str(error) or type(error).__name__
    return f"{error.filename}: {reason}" if error.filename else reason


def version() -> str:
    """The installed version of the distribution "symprop"."""
    try:
        return importlib.metadata.version("symprop")
    except importlib.metadata.PackageNotFoundError:
        return "0+unknown"  # run from a checkout that was never installed


class _Parser(argparse.ArgumentParser):
    """argparse, with its usage errors on one line like every other error of symprop."""

    def error(self, message):
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="symprop", description="Derive, generate and check "
                     "the gradients of neural networks: dense, normalization, dropout, convolution and pooling layers.")
    parser.add_argument("--version", action="version", version=f"symprop {version()}")
    commands = parser.add_subparsers(metavar="command")

    p = commands.add_parser("list", help="the preset networks")
    p.set_defaults(run=_list)

    p = commands.add_parser("derive", help="the derivation, step by step")
    p.add_argument("net", help=_NET_HELP)
    _traced_options(p)
    p.add_argument("--format", choices=("text", "latex", "markdown"),
                   help="default: from the -o suffix (.tex, .pdf: latex; .md: markdown), else text")
    p.add_argument("--elements", action="store_true",
                   help="also the scalar closed form of every gradient entry (small networks)")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write to FILE: .txt, .tex (a complete LaTeX document), .pdf (compiled by "
                   "pdflatex) or .md")
    p.set_defaults(run=_derive)

    p = commands.add_parser("generate", help="write generated/<name>.py for networks")
    p.add_argument("nets", nargs="*", metavar="NET", help="presets, spec paths or FILE.py:FUNCTION (default: every "
                   "preset)")
    _traced_options(p)
    p.add_argument("--out", type=Path, default=Path("generated"), help="output directory (default: generated)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is missing or differs")
    p.add_argument("--force", action="store_true", help="overwrite modules that were edited by hand")
    p.add_argument("--backend", choices=BACKENDS, default="numpy",
                   help="numpy (default: imports nothing but NumPy) or numba (the same API, each function "
                        "compiled; needs the numba extra: pip install symprop[numba])")
    p.set_defaults(run=_generate)

    p = commands.add_parser(
        "check", help="generated vs numerical gradients (and a hand-written backward)",
        description="Compare the generated gradients with finite differences (float64), and with a "
                    "hand-written backward (--against) and PyTorch autograd (--torch). Each array's error is "
                    "shown as its largest absolute error and its relative error, max |got - expected| / "
                    "max |expected| over the array (at least 1e-6 max(1, |loss|) and 1e-4 of the largest "
                    "gradient entry in the denominator); an array is wrong when that exceeds 1e-6 (1e-5 for "
                    "a float32 backward, 1e-10 against PyTorch). "
                    "Exit status: 0 all agree, 1 a difference, 2 bad input.")
    p.add_argument("net", help=_NET_HELP)
    _traced_options(p)
    p.add_argument("--against", metavar="MODULE:FUNCTION",
                   help="a hand-written backward to check: MODULE is a dotted name importable from the current "
                        "directory or a path to a .py file; " + CALLING_CONVENTION)
    p.add_argument("--seed", type=_whole_number, default=0, help="seed of the random values the spec lacks and "
                                                                "of the sampled entries (default 0)")
    p.add_argument("--batch", type=_positive_int, default=3, metavar="N",
                   help="samples drawn when the spec leaves the batch size open (default 3)")
    p.add_argument("--entries", type=_entries, default=-1, metavar="K",
                   help="entries per array compared with finite differences: a number, or 'all' (default: all "
                        "for arrays of up to 1,000 entries, a seeded sample of 100 beyond)")
    p.add_argument("--names", type=_names, default=None, metavar="OURS=YOURS,...",
                   help="your backward's own names of the arrays (gamma2=gamma1,W3=W2): it is called with them, "
                        "and its gradients are read by them")
    p.add_argument("--torch", action="store_true", help="also compare with PyTorch autograd in float64")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=_check)

    training.register(commands)
    return parser


_NET_HELP = ("a preset name, a path to a spec (.toml), or your own NumPy function as FILE.py:FUNCTION "
             "(traced, with --values)")


def _traced_options(p) -> None:
    p.add_argument("--values", type=Path, metavar="FILE.npz",
                   help="for FILE.py:FUNCTION: the example arrays, by the function's parameter names")
    p.add_argument("--wrt", metavar="NAMES", help="for FILE.py:FUNCTION: the names to differentiate, comma-separated "
                   "(arrays or local variables; default: every floating-point array)")
    p.add_argument("--timeout", type=_seconds, default=TIMEOUT, metavar="SECONDS",
                   help=f"the longest your code may run: tracing FILE.py:FUNCTION, and each call of --against, "
                        f"which runs in a process of its own (default {TIMEOUT:g})")


def _is_function(net: str) -> bool:
    """Whether NET names a user's function (FILE.py:FUNCTION or a dotted MODULE:FUNCTION)."""
    head, sep, tail = net.rpartition(":")
    return bool(sep) and tail.isidentifier() and (head.endswith(".py") or all(
        part.isidentifier() for part in head.split(".")))


def _load(net: str, args):
    """A spec or preset as a Network; FILE.py:FUNCTION traced into a Program."""
    head, _, tail = net.rpartition(":")
    if head.endswith(".py") and "." in tail and all(part.isidentifier() for part in tail.split(".")):
        raise UsageError(f"{net}: FILE.py:FUNCTION names a function of the file, not a method ({tail}); trace "
                         f"a model's method from Python: symprop.trace(model.{tail.rpartition('.')[2]}, ...)")
    if not _is_function(net):
        if getattr(args, "values", None) is not None or getattr(args, "wrt", None):
            raise UsageError(f"--values and --wrt go with FILE.py:FUNCTION, not the spec {net}")
        return symbolic.load(net)
    from .data import load_npz
    if args.values is None:
        raise UsageError(f"{net}: a traced function needs its example arrays: --values FILE.npz")
    arrays = load_npz(args.values, "--values")
    wrt = [name.strip() for name in args.wrt.split(",")] if args.wrt else None
    with time_limit(args.timeout, f"{net}: importing and tracing {net.rpartition(':')[2]}"), \
            contextlib.redirect_stdout(sys.stderr), _exit_raises():  # what it prints: never into the output
        function = _import_function(net, label=net)
        try:
            _fits(function, arrays)
        except TypeError as error:  # the arrays do not fit the function's parameters
            raise UsageError(f"{net}: {error} (the .npz names the arrays by the function's parameters)") from None
        try:
            program = symbolic.trace(function, wrt=wrt, **arrays)
        except TraceError:
            raise
        except (KeyboardInterrupt, TimeLimit):
            raise
        except BaseException as error:  # the user's code raised, or called sys.exit: their file and line
            raise UsageError(f"{net}: {describe(error, function.__name__, function)}") from None
    _check_values(program, arrays, f"--values {args.values}")
    origin = shlex.join([net, "--values", str(args.values)] + (["--wrt", args.wrt] if args.wrt else []))
    object.__setattr__(program, "origin", origin)
    return program


def _check_values(program, arrays: dict, where: str) -> None:
    """UsageError for example arrays the program cannot be checked with: NaN or inf in a float
    array, data that indexes (labels, tokens) outside the axis it indexes."""
    for name, array in arrays.items():
        if array.dtype.kind == "f" and not np.isfinite(array).all():
            index = tuple(int(i) for i in np.argwhere(~np.isfinite(array))[0])
            raise UsageError(f"{where}: the array {name!r} holds {array[index]} at {index}: expected finite numbers")
        length = program.bounds.get(name)
        if length is not None and array.size and not -length <= array.min() <= array.max() < length:
            raise UsageError(f"{where}: the array {name!r} holds {array.min()} to {array.max()}: it indexes an "
                             f"axis of {length} entries (from 0 to {length - 1}, or -{length} to -1 from the end)")


@contextlib.contextmanager
def _exit_raises():
    """os._exit in the user's code (imported and traced in this process) raises OsExit, which
    is reported with their file and line, rather than ending symprop with its status and no word."""
    def _exit(status):
        raise OsExit(f"os._exit({status})")
    real, os._exit = os._exit, _exit
    try:
        yield
    finally:
        os._exit = real


def _fits(function, arrays: dict) -> None:
    """TypeError if the function cannot take the arrays by name (a parameter without a default left
    out, or a name it does not have); one whose signature cannot be read is called as it is."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    signature.bind(**arrays)


def _list(args) -> int:
    for name in symbolic.presets():
        print(f"{name:<28} {symbolic.load(name).description}")
    return 0


_SUFFIX_FORMATS = {".txt": "text", ".tex": "latex", ".pdf": "latex", ".md": "markdown"}


def _derive(args) -> int:
    network = _load(args.net, args)
    suffix = args.output.suffix.lower() if args.output else ""
    if args.output is not None:
        _check_derive_output(args.output, suffix)
    fmt = args.format or _SUFFIX_FORMATS.get(suffix, "text")
    if suffix == ".pdf" and fmt != "latex":
        raise UsageError(f"-o {args.output}: a PDF is made from --format latex, not {fmt}")
    if args.elements and fmt == "text":
        raise UsageError("--elements needs --format latex or markdown (or -o FILE.tex, .pdf, .md)")
    text = _derivation_text(symbolic.derive(network), fmt, args.elements)
    if args.output is None:
        print(text, end="")
        return 0
    if suffix == ".pdf":
        try:
            files.write_pdf(text, args.output)
        except files.PdfError as error:
            raise UsageError(f"-o {args.output}: {error}") from None
    else:
        files.atomic_write(args.output, lambda handle: handle.write(text.encode("utf-8")))
    print(f"wrote {args.output}")
    return 0


def _check_derive_output(path: Path, suffix: str) -> None:
    """Refuse an unknown extension (a .docx is not written as text) or a path that cannot be
    written, before deriving anything."""
    if suffix and suffix not in _SUFFIX_FORMATS:
        raise UsageError(f"-o {path}: unknown extension {suffix}; expected "
                         f"{', '.join(list(_SUFFIX_FORMATS)[:-1])} or {list(_SUFFIX_FORMATS)[-1]}")
    files.require_writable(path, "-o")


def _derivation_text(derivation, fmt: str, elements: bool) -> str:
    """The derivation in `fmt`, ending in a newline."""
    try:
        text = {"text": derivation.text, "latex": derivation.latex,
                "markdown": derivation.markdown}[fmt](**({"elements": True} if elements else {}))
    except ValueError as error:  # too large for --elements
        raise UsageError(f"--elements: {error}") from None
    return text if text.endswith("\n") else text + "\n"


def _generate(args) -> int:
    networks = [_load(net, args) for net in (args.nets or symbolic.presets())]
    for given, net in zip(args.nets, networks):
        problem = module_name_problem(net.name) if isinstance(net, symbolic.Program) else None
        if problem:
            raise UsageError(f"{given}: the module would be named after the function, and {net.name!r} {problem}")
    names = [net.name for net in networks]
    if len(set(names)) != len(names):
        raise UsageError("two specs name the same module: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    if not args.check:
        files.require_writable(args.out, "--out", folder=True)
    sources = files.render(networks, args.out, backend=args.backend)
    if args.check:
        problems = files.stale(sources, args.out)
        given = dict(zip([f"{net.name}.py" for net in networks], args.nets or [net.name for net in networks]))
        out = "" if args.out == Path("generated") else f" --out {shlex.quote(str(args.out))}"
        out += "" if args.backend == "numpy" else f" --backend {args.backend}"
        for path, what in problems:  # a command that regenerates the file, run from here
            print(f"{path}: {what}; run: symprop generate {shlex.quote(given[path.name])}{out}")
        if not problems:
            print(f"{len(sources)} generated module(s) in {args.out} are up to date")
        return 1 if problems else 0
    try:
        changed = files.write(sources, args.out, force=args.force)
    except files.EditedFiles as error:
        raise UsageError(str(error)) from None
    for name in sources:
        state = "wrote" if args.out / name in changed else "unchanged"
        print(f"{state} {args.out / name}")
    return 0


def _check(args) -> int:
    network = _load(args.net, args)
    if isinstance(network, symbolic.Program) and args.torch:
        raise UsageError("--torch: a traced function has no PyTorch twin; its gradients are checked against "
                         "finite differences and --against")
    if not isinstance(network, symbolic.Program):
        require_memory(network, args.batch, "checking it")
    try:
        against = ChildFunction(args.against, f"--against {args.against}", args.timeout) if args.against else None
    except Failed as error:  # the module hangs, exits or crashes while being imported: it cannot be imported
        raise UsageError(f"--against {args.against}: {error}") from None
    progress = _Progress() if sys.stderr.isatty() and not args.json else None
    try:
        report = check(network, against, seed=args.seed, torch=args.torch, entries=args.entries,
                       batch=args.batch, progress=progress, names=args.names)
    except TorchMissing as error:
        raise UsageError(f"--torch: {error}") from None
    finally:
        if progress is not None:
            progress.clear()
        if against is not None:
            against.close()
    print(report.to_json() if args.json else report.format(), end="\n" if args.json else "")
    return 0 if report.ok else 1


class _Progress:
    """"numerical gradients: 340 of 600 entries" on the terminal, rewritten in place."""

    def __init__(self):
        self.shown = -1

    def __call__(self, done: int, total: int) -> None:
        percent = 100 * done // total
        if percent != self.shown:
            self.shown = percent
            print(f"\rnumerical gradients: {done} of {total} entries", end="", file=sys.stderr, flush=True)

    def clear(self) -> None:
        if self.shown >= 0:
            print("\r\033[K", end="", file=sys.stderr, flush=True)


def _names(text: str) -> dict:
    """--names gamma2=gamma1,W3=W2: {"gamma2": "gamma1", "W3": "W2"}."""
    names = {}
    for pair in filter(None, (part.strip() for part in text.split(","))):
        ours, sep, theirs = (side.strip() for side in pair.partition("="))
        if not sep or not ours or not theirs:
            raise argparse.ArgumentTypeError(f"expected OURS=YOURS pairs separated by commas, not {pair!r}")
        if ours in names:
            raise argparse.ArgumentTypeError(f"{ours!r} is named twice")
        names[ours] = theirs
    return names


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, not {text!r}")
    return value


def _entries(text: str):
    """--entries: a whole number >= 1, or 'all' (None)."""
    return None if text == "all" else _positive_int(text, "a number >= 1 or 'all'")


def _whole_number(text: str) -> int:
    return _positive_int(text, "a whole number >= 0", least=0)


def _positive_int(text: str, expected: str = "a whole number >= 1", least: int = 1) -> int:
    try:
        value = int(text)
    except ValueError:
        value = least - 1
    if value < least:
        raise argparse.ArgumentTypeError(f"expected {expected}, not {text!r}")
    return value


def _import_function(spec: str, label: str):
    """The user's function, imported in this process (to be traced)."""
    try:
        return import_function(spec, label)
    except ImportFailed as error:
        raise UsageError(str(error)) from None


if __name__ == "__main__":
    sys.exit(main())

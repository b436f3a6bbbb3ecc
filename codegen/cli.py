"""The `symprop` command line: list, derive, generate, check.

Exit status: 0 success, 1 a check found a difference, 2 bad input (usage, spec, values).
Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from pathlib import Path

import symbolic
from symbolic.spec import SpecError

from . import check as checking
from . import files
from .errors import UsageError
from . import train as training
from .reference import TorchMissing


def main(argv=None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (SpecError, UsageError, checking.CheckError) as error:
        print(f"symprop: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="symprop", description="Derive, generate and check "
                                     "the gradients of fully connected networks.")
    commands = parser.add_subparsers(required=True, metavar="command")

    p = commands.add_parser("list", help="the preset networks")
    p.set_defaults(run=_list)

    p = commands.add_parser("derive", help="the derivation, step by step")
    p.add_argument("net", help="a preset name or a path to a spec (.toml)")
    p.add_argument("--format", choices=("text", "latex", "markdown"),
                   help="default: from the -o suffix (.tex, .pdf: latex; .md: markdown), else text")
    p.add_argument("--elements", action="store_true",
                   help="also the scalar closed form of every gradient entry (small networks)")
    p.add_argument("-o", "--output", type=Path,
                   help="write to FILE (.tex: a complete LaTeX document; .pdf: compiled by pdflatex)")
    p.set_defaults(run=_derive)

    p = commands.add_parser("generate", help="write generated/<name>.py for networks")
    p.add_argument("nets", nargs="*", metavar="NET", help="presets or spec paths (default: every preset)")
    p.add_argument("--out", type=Path, default=Path("generated"), help="output directory (default: generated)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if any file is missing or differs")
    p.add_argument("--force", action="store_true", help="overwrite modules that were edited by hand")
    p.set_defaults(run=_generate)

    p = commands.add_parser("check", help="generated vs numerical gradients (and a hand-written backward)")
    p.add_argument("net", help="a preset name or a path to a spec (.toml)")
    p.add_argument("--against", metavar="MODULE:FUNCTION", help="a hand-written gradients function to check")
    p.add_argument("--seed", type=int, default=0, help="seed of the random values the spec lacks (default 0)")
    p.add_argument("--torch", action="store_true", help="also compare with PyTorch autograd in float64")
    p.set_defaults(run=_check)

    training.register(commands)
    return parser


def _list(args) -> int:
    for name in symbolic.presets():
        print(f"{name:<28} {symbolic.load(name).description}")
    return 0


_SUFFIX_FORMATS = {".tex": "latex", ".pdf": "latex", ".md": "markdown"}


def _derive(args) -> int:
    derivation = symbolic.derive(symbolic.load(args.net))
    suffix = args.output.suffix.lower() if args.output else ""
    fmt = args.format or _SUFFIX_FORMATS.get(suffix, "text")
    if suffix == ".pdf" and fmt != "latex":
        raise UsageError(f"-o {args.output}: a PDF is made from --format latex, not {fmt}")
    if args.elements and fmt == "text":
        raise UsageError("--elements needs --format latex or markdown (or -o FILE.tex, .pdf, .md)")
    try:
        text = {"text": derivation.text, "latex": derivation.latex,
                "markdown": derivation.markdown}[fmt](**({"elements": True} if args.elements else {}))
    except ValueError as error:  # too large for --elements
        raise UsageError(f"--elements: {error}") from None
    text = text if text.endswith("\n") else text + "\n"
    if args.output is None:
        print(text, end="")
    elif suffix == ".pdf":
        try:
            files.write_pdf(text, args.output)
        except files.PdfError as error:
            raise UsageError(f"-o {args.output}: {error}") from None
        print(f"wrote {args.output}")
    else:
        files.write({args.output.name: text}, args.output.parent)
        print(f"wrote {args.output}")
    return 0


def _generate(args) -> int:
    networks = [symbolic.load(net) for net in (args.nets or symbolic.presets())]
    names = [net.name for net in networks]
    if len(set(names)) != len(names):
        raise UsageError("two specs name the same module: " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    sources = files.render(networks)
    if args.check:
        problems = files.stale(sources, args.out)
        for path, what in problems:
            print(f"{path}: {what}; run: symprop generate {path.stem}")
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
    network = symbolic.load(args.net)
    against = _import_function(args.against) if args.against else None
    try:
        report = checking.check(network, against, seed=args.seed, torch=args.torch)
    except TorchMissing as error:
        raise UsageError(f"--torch: {error}") from None
    print(report.format(), end="")
    return 0 if report.ok else 1


def _import_function(spec: str):
    module_name, sep, function_name = spec.rpartition(":")
    if not sep or not module_name or not function_name.isidentifier():
        raise UsageError(f"--against {spec}: expected MODULE:FUNCTION")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.exists():
                raise UsageError(f"--against {spec}: no such file {path}")
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except UsageError:
        raise
    except Exception as error:
        raise UsageError(f"--against {spec}: cannot import {module_name}: {type(error).__name__}: {error}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise UsageError(f"--against {spec}: {module_name} has no function {function_name}")
    return function


if __name__ == "__main__":
    sys.exit(main())

"""Writing generated modules: atomically, all or nothing, and checking them for staleness.

Every writer here names the file it was writing in the OSError it raises (never a temporary
file beside it), removes its temporary files and the folders it created when it fails, and
`require_writable` lets a command refuse an output path before doing any work.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

from ..symbolic.spec import Network

from ..errors import UsageError
from .module import content_hash, generate, recorded_hash


def compile_module(network: Network, source: str | None = None) -> types.ModuleType:
    """The generated module of `network`, compiled in memory (nothing is written)."""
    source = generate(network) if source is None else source
    module = types.ModuleType(network.name)
    module.__file__ = f"<symprop generated {network.name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our own generated code
    return module


def render(networks: list[Network], out=None, backend: str = "numpy") -> dict[str, str]:
    """File name -> source, for every network (to be written into the folder `out`, which the
    modules' regenerate line names); raises before anything is written."""
    return {f"{net.name}.py": generate(net, None if out is None else str(out), backend) for net in networks}


def atomic_write(path: Path, write) -> None:
    """`write(handle)` into a temporary file beside `path`, then rename it: never half a file."""
    with _naming(path), _new_folders(path.parent):
        _replace(_temporary(path, write), path)


def _temporary(path: Path, write) -> Path:
    """A temporary file beside `path` holding what `write(handle)` wrote, with the usual
    permissions (0666 less the umask, not mkstemp's private 0600); removed if writing fails."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _replace(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`; `tmp` is removed if that fails."""
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def _naming(path: Path):
    """An OSError raised inside names `path`, not the temporary file or folder that failed."""
    try:
        yield
    except OSError as error:
        raise OSError(error.errno, error.strerror or str(error), str(path)) from error


@contextlib.contextmanager
def _new_folders(folder: Path):
    """Create `folder` and its missing parents; remove the ones created if the body fails."""
    missing = list(itertools.takewhile(lambda p: not p.exists(), (folder, *folder.parents)))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        yield
    except BaseException:
        for created in missing:  # the deepest first
            with contextlib.suppress(OSError):
                created.rmdir()
        raise


def require_writable(path: Path, option: str, *, folder: bool = False) -> None:
    """Refuse an output path before any work is done: `UsageError` naming `option`, `path` and
    the reason when `path` (a file, or with `folder` a folder) cannot be written. Passing does
    not promise room on the disk: the writers above still fail cleanly."""
    problem = _unwritable(Path(path), folder)
    if problem:
        raise UsageError(f"{option} {path}: {problem}")


def _unwritable(path: Path, folder: bool) -> str | None:
    """Why `path` cannot be written, or None."""
    if folder and path.exists() and not path.is_dir():
        return "is a file, not a folder"
    if not folder and path.is_dir():
        return "is a folder, not a file"
    if not folder and path.exists() and not path.is_file():
        return "is not a regular file"
    directory = path if folder else path.parent
    existing = next((p for p in (directory, *directory.parents) if p.exists()), directory)
    if existing == directory and not existing.is_dir():
        return f"{directory} is not a folder"
    if not existing.is_dir():
        return f"cannot create the folder {directory}: {existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"cannot write into the folder {existing}: permission denied"
    return None


def hand_edited(path: Path) -> bool:
    """Whether an existing file is not, byte for byte, a module symprop wrote: its text does not
    match the content hash its header records (or it records none)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    recorded = recorded_hash(text)
    return recorded is None or recorded != content_hash(text)


def write(sources: dict[str, str], out: Path, force: bool = False) -> list[Path]:
    """Write every file atomically; return the paths whose content changed.

    A file that was edited by hand (see `hand_edited`) is not overwritten unless `force`:
    `EditedFiles` is raised before anything is written.
    """
    if not force:
        edited = [out / name for name, source in sources.items()
                  if (out / name).exists() and (out / name).read_text(encoding="utf-8", errors="replace") != source
                  and hand_edited(out / name)]
        if edited:
            raise EditedFiles(edited)
    for name in sources:  # what an interrupted run (kill -9) left of these files
        for tmp in leftovers(out / name):
            with _naming(tmp):
                tmp.unlink(missing_ok=True)
    staged = {}  # every file is written to a temporary first; renamed only when all are
    with _new_folders(out):
        try:
            for name, source in sources.items():
                path = out / name
                if _holds(path, source):
                    continue
                with _naming(path):
                    staged[path] = _temporary(path, lambda handle, text=source: handle.write(text.encode("utf-8")))
            for path, tmp in staged.items():
                with _naming(path):
                    _replace(tmp, path)
        except BaseException:
            for tmp in staged.values():
                tmp.unlink(missing_ok=True)
            raise
    return list(staged)


def _holds(path: Path, source: str) -> bool:
    """Whether the file `path` exists and holds exactly `source` (any bytes may be there)."""
    with _naming(path):
        return path.exists() and path.read_bytes() == source.encode("utf-8")


def leftovers(path: Path) -> list[Path]:
    """The temporary files of `path` (`_temporary`'s naming) that a killed run left behind."""
    if not path.parent.is_dir():
        return []
    return sorted(p for p in path.parent.glob(f".{glob.escape(path.name)}.*.tmp") if p.is_file())


def stale(sources: dict[str, str], out: Path) -> list[tuple[Path, str]]:
    """(path, "missing", "differs" or the temporary file left beside it) for every file that
    `write` would change."""
    result = []
    for name, source in sources.items():
        path = out / name
        if not path.exists():
            result.append((path, "missing"))
        elif not _holds(path, source):
            result.append((path, "differs"))
        result += [(path, f"{tmp.name} is left from an interrupted run") for tmp in leftovers(path)]
    return result


class EditedFiles(RuntimeError):
    """Files that `write` would overwrite were edited by hand."""

    def __init__(self, paths):
        self.paths = paths
        names = ", ".join(str(p) for p in paths)
        super().__init__(f"{names}: edited by hand (the content hash in the header does not match); "
                         "nothing written: use --force to overwrite")


PDFLATEX_SECONDS = 300  # longer than any derivation takes to typeset


class PdfError(RuntimeError):
    """pdflatex is missing or failed."""


def write_pdf(tex: str, path: Path) -> None:
    """Compile a LaTeX document with pdflatex into `path` (atomically); PdfError, in one line,
    when pdflatex is missing, fails, takes too long or writes no PDF."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        raise PdfError("pdflatex is not installed (Debian/Ubuntu: apt-get install texlive-latex-base); "
                       f"write {path.with_suffix('.tex').name} instead and compile it elsewhere")
    with _naming(path), tempfile.TemporaryDirectory() as work:
        source = Path(work) / "derivation.tex"
        source.write_text(tex, encoding="utf-8")
        try:
            result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", source.name],
                                    cwd=work, capture_output=True, text=True, errors="replace",
                                    timeout=PDFLATEX_SECONDS)
        except subprocess.TimeoutExpired:
            raise PdfError(f"pdflatex took more than {PDFLATEX_SECONDS} s; write a .tex file instead") from None
        if result.returncode != 0:
            error = next((line for line in result.stdout.splitlines() if line.startswith("!")),
                         f"exit status {result.returncode}")
            raise PdfError(f"pdflatex failed: {error}")
        compiled = Path(work) / "derivation.pdf"
        if not compiled.is_file():
            raise PdfError("pdflatex wrote no PDF")
        pdf = compiled.read_bytes()
    atomic_write(path, lambda handle: handle.write(pdf))

"""Writing generated modules: atomically, all or nothing, and checking them for staleness."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import types
from pathlib import Path

from symbolic.spec import Network

from .module import content_hash, generate, recorded_hash


def compile_module(network: Network, source: str | None = None) -> types.ModuleType:
    """The generated module of `network`, compiled in memory (nothing is written)."""
    source = generate(network) if source is None else source
    module = types.ModuleType(network.name)
    module.__file__ = f"<symprop generated {network.name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # our own generated code
    return module


def render(networks: list[Network]) -> dict[str, str]:
    """File name -> source, for every network; raises before anything is written."""
    return {f"{net.name}.py": generate(net) for net in networks}


def atomic_write(path: Path, write) -> None:
    """`write(handle)` into a temporary file beside `path`, then rename it: never half a file."""
    tmp = _temporary(path, write)
    os.replace(tmp, path)


def _temporary(path: Path, write) -> Path:
    """A temporary file beside `path` holding what `write(handle)` wrote, with the usual
    permissions (0666 less the umask, not mkstemp's private 0600); removed if writing fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
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
    staged = {}  # every file is written to a temporary first; renamed only when all are
    try:
        for name, source in sources.items():
            path = out / name
            if path.exists() and path.read_text(encoding="utf-8") == source:
                continue
            staged[path] = _temporary(path, lambda handle, text=source: handle.write(text.encode("utf-8")))
    except BaseException:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)
        raise
    for path, tmp in staged.items():
        os.replace(tmp, path)
    return list(staged)


def stale(sources: dict[str, str], out: Path) -> list[tuple[Path, str]]:
    """(path, "missing" or "differs") for every file that `write` would change."""
    result = []
    for name, source in sources.items():
        path = out / name
        if not path.exists():
            result.append((path, "missing"))
        elif path.read_text(encoding="utf-8") != source:
            result.append((path, "differs"))
    return result


class EditedFiles(RuntimeError):
    """Files that `write` would overwrite were edited by hand."""

    def __init__(self, paths):
        self.paths = paths
        names = ", ".join(str(p) for p in paths)
        super().__init__(f"{names}: edited by hand (the content hash in the header does not match); "
                         "nothing written: use --force to overwrite")


class PdfError(RuntimeError):
    """pdflatex is missing or failed."""


def write_pdf(tex: str, path: Path) -> None:
    """Compile a LaTeX document with pdflatex into `path` (atomically)."""
    pdflatex = shutil.which("pdflatex")
    if pdflatex is None:
        raise PdfError("pdflatex is not installed (Debian/Ubuntu: apt-get install texlive-latex-base); "
                       f"write {path.with_suffix('.tex').name} instead and compile it elsewhere")
    with tempfile.TemporaryDirectory() as work:
        source = Path(work) / "derivation.tex"
        source.write_text(tex, encoding="utf-8")
        result = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", source.name],
                                cwd=work, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            error = next((line for line in result.stdout.splitlines() if line.startswith("!")), "unknown error")
            raise PdfError(f"pdflatex failed: {error}")
        pdf = (Path(work) / "derivation.pdf").read_bytes()
    atomic_write(path, lambda handle: handle.write(pdf))

import importlib.util
import os
import sys
from pathlib import Path

import pytest
from hypothesis import settings

# CI draws the same examples on every run (a failure there is reproducible, never a fluke);
# elsewhere Hypothesis explores new ones each time.
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))  # the tests' own helper modules


def load_generated(name: str):
    """The committed module generated/<name>.py, imported by its path."""
    return _load(ROOT / "generated" / f"{name}.py", f"generated_{name}")


def load_example(name: str):
    """The module examples/<name>.py (the README's hand-written backward passes), by its path."""
    return _load(ROOT / "examples" / f"{name}.py", f"example_{name}")


def _load(path: Path, module_name: str):
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(folder, *args) -> tuple[int, str, str]:
    """`symprop ARGS` in this process, run from `folder`: (exit status, stdout, stderr)."""
    import contextlib
    import io

    from symprop.cli import main
    out, err = io.StringIO(), io.StringIO()
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(list(args))
    finally:
        os.chdir(cwd)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="session")
def root() -> Path:
    return ROOT

"""Every command the README shows runs as shown, and prints what the README says it prints.

- ```console blocks: each `$ command` is run, and its output compared with the lines below it, line
  by line after collapsing whitespace; a line `...` stands for any number of lines. Numbers agree
  to 1e-6 relative; figures at rounding level (below 1e-5 in magnitude, such as the errors of a
  float64 check or a converged loss) only need to be at rounding level on both sides, since
  another CPU or BLAS rounds differently.
- ```bash blocks: each command is run and must exit 0 (the leading `python -m pip install ...`
  of the quick start is left out: the tests run in the environment it installs).
- ```python blocks that import symprop are run as programs (the pytest example, a test file, is
  run by pytest in tests/test_package.py; the block quoting a generated module is compared with it
  in tests/test_codegen.py).

Commands run in a scratch folder holding a copy of `examples/` and an empty `docs/`, so nothing in
the repository is written.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
ROUNDING_LEVEL = 1e-5  # every error figure of an "ok" row is below this


def blocks(language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", README, flags=re.S | re.M)


def console_commands() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for every `$ ` line of the console blocks."""
    result = []
    for block in blocks("console"):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            result.append((command, output))
    return result


def bash_commands() -> list[str]:
    commands = []
    for block in blocks("bash"):
        for line in block.splitlines():
            line = line.split("  #")[0].strip()
            line = re.sub(r"^python -m pip install [^&]*&&\s*", "", line)
            if line and not line.startswith(("#", "python -m pip install")):
                commands.append(line)
    return commands


def needs(command: str):
    """Skip marks for commands that need an optional tool."""
    if "--torch" in command and importlib.util.find_spec("torch") is None:
        return pytest.mark.skip(reason="PyTorch is not installed")
    if "--plot" in command and importlib.util.find_spec("matplotlib") is None:
        return pytest.mark.skip(reason="matplotlib is not installed")
    if ".pdf" in command and shutil.which("pdflatex") is None:
        return pytest.mark.skip(reason="pdflatex is not installed")
    if command.startswith("python -m pytest"):
        return pytest.mark.skip(reason="the test suite itself")
    return []


@pytest.fixture
def scratch(tmp_path):
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    (tmp_path / "docs").mkdir()
    return tmp_path


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    bin_dir = str(Path(sys.executable).parent)  # the `symprop` script of this environment
    env = {"PATH": bin_dir + ":/usr/bin:/bin", "HOME": str(cwd), "PYTHONHASHSEED": "0"}
    return subprocess.run(command, shell=True, cwd=cwd, capture_output=True, text=True, env=env, timeout=600)


def same_line(got: str, expected: str) -> bool:
    got_words, expected_words = got.split(), expected.split()
    if len(got_words) != len(expected_words):
        return False
    for g, e in zip(got_words, expected_words):
        if NUMBER.fullmatch(e) and NUMBER.fullmatch(g):
            a, b = float(g), float(e)
            if abs(a) < ROUNDING_LEVEL and abs(b) < ROUNDING_LEVEL:
                continue
            if abs(a - b) > 1e-6 * max(abs(a), abs(b)):
                return False
        elif g != e:
            return False
    return True


def matches(got: list[str], expected: list[str]) -> bool:
    """Whether `got` fits `expected`, where a line "..." stands for any number of lines."""
    if not expected:
        return not got
    if expected[0].strip() == "...":
        return any(matches(got[i:], expected[1:]) for i in range(len(got) + 1))
    return bool(got) and same_line(got[0], expected[0]) and matches(got[1:], expected[1:])


@pytest.mark.parametrize("command, expected", [pytest.param(c, o, marks=needs(c), id=c) for c, o in console_commands()])
def test_console_commands_print_what_the_readme_shows(command, expected, scratch):
    result = run(command, scratch)
    assert "Traceback" not in result.stderr, result.stderr
    got = (result.stdout + result.stderr).rstrip("\n").split("\n")
    # matplotlib's one-time notice in a fresh environment (its first use, --plot) is not ours
    got = [line for line in got if not line.startswith("Matplotlib is building the font cache")]
    assert matches(got, expected), "\n".join(["got:", *got, "", "README:", *expected])


@pytest.mark.parametrize("command", [pytest.param(c, marks=needs(c), id=c) for c in bash_commands()])
def test_bash_commands_run(command, scratch):
    result = run(command, scratch)
    assert result.returncode == 0, result.stdout + result.stderr


def python_programs() -> list[str]:
    return [block for block in blocks("python") if "import symprop" in block and not block.startswith("# test_")]


@pytest.mark.parametrize("program", python_programs())
def test_python_examples_run(program, scratch):
    (scratch / "example.py").write_text(program)
    result = run(f"{sys.executable} example.py", scratch)
    assert result.returncode == 0, result.stderr


def test_the_readme_shows_commands():
    # the parsing above finds them all: a README edit that breaks a fence fails here
    assert len(console_commands()) >= 6 and len(bash_commands()) >= 5 and len(python_programs()) >= 1
    assert all(command.startswith("symprop") for command, _ in console_commands())


def test_the_layer_kinds_table_is_the_kinds_own():
    # every kind describes itself (keys, what it computes, its PyTorch equivalent); the README's
    # table is theirs, row for row, and names every kind the spec reader takes
    from symprop.symbolic.kinds import KINDS, table
    from symprop.symbolic.spec import LAYER_KINDS
    assert table() in README
    assert set(LAYER_KINDS) == set(KINDS) and all(f"| `{name}` |" in table() for name in KINDS)

"""The `symprop` command line: output, exit codes, one-line errors."""

import os
import subprocess
import sys

import pytest
from conftest import ROOT

import symprop
from symprop import symbolic
from symprop.cli import main


def run(*args, cwd=ROOT):
    """symprop in a subprocess, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "symprop", *args], capture_output=True, text=True, cwd=cwd)


def test_list_names_every_preset_with_its_description(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == symbolic.presets()
    assert all(len(line.split()) > 2 for line in lines)


def test_derive_prints_forward_loss_and_backward_steps(capsys):
    assert main(["derive", "relu_softmax_3_4_2"]) == 0
    out = capsys.readouterr().out
    for line in ["z1 = W @ x + b1", "a2 = softmax(z2)", "L = -sum(y*log_softmax(z2))", "delta2 = a2*rowsum(y) - y",
                 "dL_dU = outer(delta2, a1)", "delta1 = (z1 > 0)*(U.T @ delta2)", "a1 = relu(z1)", "dL_dx = W.T @ delta1"]:
        assert line in out, line


@pytest.mark.parametrize("fmt, marker", [("latex", r"\begin{align*}"), ("markdown", r"\begin{aligned}")])
def test_derive_formats(capsys, fmt, marker):
    assert main(["derive", "sigmoid_mse_2_2_1", "--format", fmt]) == 0
    out = capsys.readouterr().out
    assert marker in out and r"\delta_{2}" in out


def test_generate_into_a_directory_then_check(tmp_path, capsys):
    assert main(["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path)]) == 0
    written = tmp_path / "sigmoid_mse_2_2_1.py"
    committed = (ROOT / "generated" / "sigmoid_mse_2_2_1.py").read_text()
    # the same module; its regenerate line names the folder (and the content hash follows)
    differ = [(a, b) for a, b in zip(written.read_text().splitlines(), committed.splitlines()) if a != b]
    assert [a for a, _ in differ][:1] == [f"Regenerate with: symprop generate sigmoid_mse_2_2_1 --out {tmp_path}"]
    assert len(differ) == 2 and differ[1][0].startswith("# symprop content hash: ")
    assert main(["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path), "--check"]) == 0
    written.write_text(written.read_text() + "# edited\n")
    capsys.readouterr()
    assert main(["generate", "sigmoid_mse_2_2_1", "relu_softmax_3_4_2", "--out", str(tmp_path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "sigmoid_mse_2_2_1.py: differs" in out and "relu_softmax_3_4_2.py: missing" in out
    assert not (tmp_path / "relu_softmax_3_4_2.py").exists()  # --check writes nothing


def test_check_passes_on_every_preset():
    for name in symbolic.presets():
        result = run("check", name)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "all gradients agree" in result.stdout


def buggy_module_source() -> str:
    """Seed 001's backward pass (with its W1 bug) as a module file: examples/seed001.py."""
    return (ROOT / "examples" / "seed001.py").read_text()


def test_check_against_a_buggy_backward_names_the_wrong_array(tmp_path):
    (tmp_path / "seed001.py").write_text(buggy_module_source())
    result = run("check", "relu_regression_3_4_3_1", "--against", "seed001:backward", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    table = result.stdout.split("backward vs generated")[1]
    rows = {line.split()[0]: line for line in table.splitlines() if line.startswith("  ") and not line.startswith("   ")}
    assert "WRONG" in rows["W1"]
    assert all(rows[name].rstrip().endswith("ok") for name in ["B3", "W3", "B2", "W2", "B1"])


@pytest.mark.parametrize("args, message", [
    (["derive", "no_such_net"], "no such preset or spec file"),
    (["check", "relu_softmax_3_4_2", "--against", "nothing_here:f"], "cannot import nothing_here"),
    (["check", "relu_softmax_3_4_2", "--against", "no_colon"], "expected MODULE:FUNCTION"),
])
def test_bad_input_exits_2_with_one_line(args, message):
    result = run(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_spec_file_exits_2_naming_file_and_key(tmp_path):
    spec = tmp_path / "bad.toml"
    spec.write_text('name = "bad"\ninputs = 2\n[[layers]]\nunits = 1\nactivation = "sigmoid"\n'
                    '[loss]\nkind = "cross_entropy"\n')
    for command in (["derive"], ["generate", "--out", str(tmp_path / "out")], ["check"]):
        result = run(*command, str(spec))
        assert result.returncode == 2
        assert result.stderr == f"symprop: {spec}: loss.kind: cross_entropy needs a softmax last layer, not sigmoid\n"
    assert not (tmp_path / "out").exists()


# -------------------------------------------------------------------------------------------------
# Files that cannot be written: exit 2, one line naming the file and the reason, nothing written


def tree(folder):
    """Every file and folder under `folder` (relative path -> bytes, or None for a folder)."""
    return {str(p.relative_to(folder)): None if p.is_dir() else p.read_bytes() for p in sorted(folder.rglob("*"))}


def refused(capsys, args, message):
    """main(args) exits 2, printing nothing on stdout and exactly `message` on one stderr line."""
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"symprop: {message}\n"


def limited_file_size(limit=200):
    """For subprocess.run(preexec_fn=...): files larger than `limit` bytes cannot be written
    (EFBIG, "File too large"), a full disk that fails for root too (Python ignores SIGXFSZ)."""
    import resource

    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


@pytest.mark.parametrize("out, reason", [
    ("afile", "is a file, not a folder"),
    ("afile/sub", "cannot create the folder {tmp}/afile/sub: {tmp}/afile is not a folder"),
    ("afile/sub/deeper", "cannot create the folder {tmp}/afile/sub/deeper: {tmp}/afile is not a folder"),
])
def test_generate_into_a_file_or_a_folder_that_cannot_be_created(tmp_path, capsys, out, reason):
    (tmp_path / "afile").write_text("mine")
    before = tree(tmp_path)
    refused(capsys, ["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path / out)],
            f"--out {tmp_path / out}: {reason.format(tmp=tmp_path)}")
    assert tree(tmp_path) == before


@pytest.mark.parametrize("name", ["x.txt", "x.tex", "x.md", "x.pdf", "x"])
def test_derive_into_a_folder_that_cannot_be_created(tmp_path, capsys, name):
    (tmp_path / "afile").write_text("mine")
    before = tree(tmp_path)
    path = tmp_path / "afile" / "sub" / name
    refused(capsys, ["derive", "sigmoid_mse_2_2_1", "-o", str(path)],
            f"-o {path}: cannot create the folder {path.parent}: {tmp_path / 'afile'} is not a folder")
    assert tree(tmp_path) == before


def test_derive_onto_a_folder_is_refused(tmp_path, capsys):
    (tmp_path / "notes.md").mkdir()
    refused(capsys, ["derive", "sigmoid_mse_2_2_1", "-o", str(tmp_path / "notes.md")],
            f"-o {tmp_path / 'notes.md'}: is a folder, not a file")
    assert tree(tmp_path) == {"notes.md": None}


@pytest.mark.parametrize("name", ["out.docx", "out.html", "OUT.DOCX"])
def test_derive_refuses_an_unknown_extension(tmp_path, capsys, name):
    path = tmp_path / name
    suffix = path.suffix.lower()
    refused(capsys, ["derive", "sigmoid_mse_2_2_1", "-o", str(path)],
            f"-o {path}: unknown extension {suffix}; expected .txt, .tex, .pdf or .md")
    assert tree(tmp_path) == {}


def test_derive_overwrites_its_own_earlier_output(tmp_path, capsys):
    # the output was once written like a generated module, and a second derivation into the
    # same file was refused with a traceback as "edited by hand"
    path = tmp_path / "derivation.txt"
    for name in ("sigmoid_mse_2_2_1", "relu_softmax_3_4_2"):
        assert main(["derive", name, "-o", str(path)]) == 0
        assert capsys.readouterr().out == f"wrote {path}\n"
        assert main(["derive", name]) == 0
        assert path.read_text() == capsys.readouterr().out
    assert tree(tmp_path) == {"derivation.txt": path.read_bytes()}


FAKE_PDFLATEX = {  # name -> (shell script body, the message after "pdflatex failed" or "pdflatex")
    "error": ("echo 'This is a fake pdflatex'; echo '! LaTeX Error: File amsmath.sty not found.'; exit 1",
              "pdflatex failed: ! LaTeX Error: File amsmath.sty not found."),
    "no error line": ("echo 'killed'; exit 3", "pdflatex failed: exit status 3"),
    "no pdf": ("echo 'Output written on nothing'; exit 0", "pdflatex wrote no PDF"),
    "latin-1 log": ("printf '! Undefined control sequence \\351t\\351.\\n'; exit 1",
                    "pdflatex failed: ! Undefined control sequence \ufffdt\ufffd."),
}


@pytest.mark.parametrize("case", FAKE_PDFLATEX)
def test_derive_to_pdf_when_pdflatex_fails(tmp_path, capsys, monkeypatch, case):
    script, message = FAKE_PDFLATEX[case]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "pdflatex").write_text(f"#!/bin/sh\n{script}\n")
    (bin_dir / "pdflatex").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "out"
    refused(capsys, ["derive", "sigmoid_mse_2_2_1", "-o", str(out / "derivation.pdf")],
            f"-o {out / 'derivation.pdf'}: {message}")
    assert not out.exists()


@pytest.mark.parametrize("args, written", [
    (["generate", "sigmoid_mse_2_2_1", "--out", "out/generated"], "out/generated/sigmoid_mse_2_2_1.py"),
    (["derive", "relu_softmax_3_4_2", "-o", "out/derivation.md"], "out/derivation.md"),
])
def test_a_full_disk_exits_2_naming_the_file(tmp_path, args, written):
    result = subprocess.run([sys.executable, "-m", "symprop", *args], capture_output=True, text=True,
                            cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                            preexec_fn=limited_file_size())
    assert result.returncode == 2
    assert result.stderr == f"symprop: {written}: File too large\n"
    assert tree(tmp_path) == {}  # no temporary file, and the folder it made is gone


def test_a_full_disk_leaves_existing_modules_as_they_were(tmp_path):
    assert main(["generate", "--out", str(tmp_path)]) == 0
    for path in tmp_path.iterdir():  # every module is stale: all would be rewritten
        path.write_text(path.read_text().replace("Each line", "A line"))
    before = tree(tmp_path)
    result = subprocess.run([sys.executable, "-m", "symprop", "generate", "--out", str(tmp_path), "--force"],
                            capture_output=True, text=True, cwd=ROOT, preexec_fn=limited_file_size(1000))
    assert result.returncode == 2
    assert result.stderr.startswith(f"symprop: {tmp_path}{os.sep}") and result.stderr.endswith(".py: File too large\n")
    assert result.stderr.count("\n") == 1
    assert tree(tmp_path) == before


def test_generate_compares_files_holding_any_bytes(tmp_path, capsys):
    path = tmp_path / "sigmoid_mse_2_2_1.py"
    path.write_bytes(b"# \xff\xfe not UTF-8\n")
    assert main(["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path), "--check"]) == 1
    assert capsys.readouterr().out == f"{path}: differs; run: symprop generate sigmoid_mse_2_2_1 --out {tmp_path}\n"
    assert main(["generate", "sigmoid_mse_2_2_1", "--out", str(tmp_path), "--force"]) == 0
    assert path.read_text() == symprop.generate(symbolic.load("sigmoid_mse_2_2_1"), out=str(tmp_path))


# -------------------------------------------------------------------------------------------------
# symprop alone, --version, usage errors


def test_symprop_alone_prints_the_commands(capsys):
    assert main([]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and captured.out.startswith("usage: symprop")
    for command in ("list", "derive", "generate", "check", "train"):
        assert f"    {command} " in captured.out, command
    result = run()
    assert result.returncode == 0 and result.stdout == captured.out and result.stderr == ""


def test_version(capsys):
    from importlib.metadata import version
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"symprop {version('symprop')}\n"
    result = run("--version")
    assert result.returncode == 0 and result.stdout == f"symprop {version('symprop')}\n"


def test_version_of_a_checkout_that_was_never_installed(monkeypatch, capsys):
    import importlib.metadata

    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "symprop 0+unknown\n"


@pytest.mark.parametrize("args, message", [
    (["bogus"], "symprop: argument command: invalid choice: 'bogus'"),
    (["train"], "symprop train: the following arguments are required: net"),
    (["train", "sigmoid_mse_2_2_1", "--steps", "1e3"], "symprop train: argument --steps: invalid int value: '1e3'"),
    (["derive", "sigmoid_mse_2_2_1", "--format", "html"], "symprop derive: argument --format: invalid choice"),
])
def test_usage_errors_are_one_line(capsys, args, message):
    assert main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(message) and captured.err.count("\n") == 1
    assert captured.err.endswith(" --help)\n")


def test_generate_check_names_a_command_that_regenerates_the_file(tmp_path):
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "clf.toml").write_text('name = "clf"\ninputs = 2\n[[layers]]\nunits = 2\n'
                                                 'activation = "softmax"\n[loss]\nkind = "cross_entropy"\n')
    result = run("generate", "specs/clf.toml", "--out", "mods", "--check", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == "mods/clf.py: missing; run: symprop generate specs/clf.toml --out mods\n"
    command = result.stdout.split("run: ")[1].split()
    assert command[:2] == ["symprop", "generate"]
    assert run(*command[1:], cwd=tmp_path).returncode == 0  # the hint, run as shown
    assert run("generate", "specs/clf.toml", "--out", "mods", "--check", cwd=tmp_path).returncode == 0

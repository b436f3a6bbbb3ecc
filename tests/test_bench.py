"""The benchmark harness (benchmarks/bench.py): its hand-written references are right, its
agreement check catches a wrong gradient, and its runs print and write what they say.

No timing assertions: the numbers depend on the machine. Whole runs are subprocesses (the
benchmark pins itself to one core and one BLAS thread, which should not leak into the session).
"""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"

sys.path.insert(0, str(BENCH.parent))
import bench  # noqa: E402
from peers import peer_symprop, peer_sympy  # noqa: E402


def _run(*arguments, timeout=300):
    result = subprocess.run([sys.executable, str(BENCH), *arguments], cwd=ROOT, capture_output=True, text=True,
                            timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.mark.parametrize("case", bench.CASES, ids=lambda case: f"{case.name}, N={case.n}")
def test_every_hand_written_reference_agrees_with_the_generated_gradients(case):
    """Each hand-written backprop (benchmarks/hand.py) is checked against symprop's module to
    1e-7 of the largest entry, as the benchmark does before timing; a reference that were wrong
    would make every ratio in the table meaningless."""
    network = case.network()
    values = bench.values_of(case, network)
    expected = case.hand(**{name: np.copy(value) for name, value in values.items()})
    got = peer_symprop("numpy", True)(network, values)(**values)
    assert set(got) == set(expected)
    bench.agree(got, expected, case.name)
    scale = max(float(np.max(np.abs(v))) for v in expected.values())
    assert scale > 1e-6  # not a vacuous agreement of zeros


def test_the_agreement_check_catches_a_wrong_entry():
    case = bench.CASES[1]
    network = case.network()
    values = bench.values_of(case, network)
    expected = case.hand(**values)
    wrong = {name: np.copy(value) for name, value in expected.items()}
    wrong["W1"][3, 4] += 1e-5 * np.max(np.abs(wrong["W2"]))
    with pytest.raises(AssertionError, match="gradient of W1 differs"):
        bench.agree(wrong, expected, case.name)
    with pytest.raises(AssertionError, match=r"gradient of b1 has shape \(1, 20\), not \(20,\)"):
        bench.agree({**expected, "b1": expected["b1"][None, :]}, expected, case.name)


def test_the_sympy_peer_is_exact_on_a_tiny_preset_and_absent_on_a_large_network():
    small = next(case for case in bench.CASES if case.name == "preset sigmoid_mse_2_2_1")
    network = small.network()
    values = bench.values_of(small, network)
    bench.agree(peer_sympy(network, values)(**values), small.hand(**values), small.name)
    large = bench.CASES[2]
    assert peer_sympy(large.network(), bench.values_of(large, large.network())) is None


MATPLOTLIB = importlib.util.find_spec("matplotlib") is not None


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    files = {"csv": out / "quick.csv", "md": out / "quick.md"} | ({"plot": out / "quick.png"} if MATPLOTLIB else {})
    stdout = _run("--quick", "--peers", "numpy,SymPy", *(f"--{kind}={path}" for kind, path in files.items()))
    return stdout, files


def test_a_quick_run_prints_the_table(quick_run):
    stdout, files = quick_run
    header, rule, row = stdout.splitlines()[:3]
    assert header == ("| network | N | hand µs | symprop numpy µs (×hand) | symprop numpy noval µs (×hand) "
                      "| SymPy elements µs (×hand) |")
    assert row.startswith("| 2-2-1 sigmoid, MSE | 1 | ") and row.count("|") == header.count("|")
    assert "n/a" not in row  # every one of these writes the 2-2-1 network
    assert "command: python benchmarks/bench.py --quick" in stdout
    assert files["md"].read_text(encoding="utf-8") == stdout.rstrip("\n") + "\n"


def test_a_quick_run_writes_the_csv(quick_run):
    _, files = quick_run
    with open(files["csv"], newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["implementation"] for row in rows] == ["hand", "symprop numpy", "symprop numpy noval", "SymPy elements"]
    assert all(float(row["median_us"]) > 0 for row in rows)
    assert rows[0]["ratio_to_hand"] == "1.0000"
    for row in rows:
        assert float(row["ratio_to_hand"]) == pytest.approx(float(row["median_us"]) / float(rows[0]["median_us"]),
                                                            rel=1e-3)


def test_a_quick_run_draws_the_figure_or_says_it_needs_matplotlib(quick_run, tmp_path):
    if MATPLOTLIB:
        data = quick_run[1]["plot"].read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 10_000
        return
    result = subprocess.run([sys.executable, str(BENCH), "--quick", "--plot", str(tmp_path / "f.png")], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "--plot needs matplotlib" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "f.png").exists()


def test_a_fresh_process_run_reports_page_faults_and_memory():
    stdout = _run("--quick", "--fresh", "--only", "CNN", "--peers", "numpy noval")
    row = stdout.splitlines()[2]
    assert row.startswith("| CNN 3x32x32, conv 16 3x3, maxpool 2, dense 10 | 16 | ")
    hand_cell, generated_cell = row.split(" | ")[2:4]
    assert "faults, peak" in hand_cell
    assert " kept" in generated_cell  # the module's workspaces, kept between calls
    kept = float(generated_cell.split(" + ")[1].split()[0])
    # float64 buffers: im2col columns (16, 27, 1024), the convolution (its ReLU in place) and
    # delta1 (16, 16, 4, 256) each, the pool (16, 16, 16, 16): 1,032,192 entries, 8.26 MB
    assert kept == pytest.approx(8.26, abs=0.1)


def test_a_depth_run_prints_derive_generate_and_check():
    stdout = _run("--depth", "--depths", "2", "3", "--check")
    lines = stdout.splitlines()
    assert lines[0] == "| network | derive s | generate s | check s |"
    assert lines[2].startswith("| 2 tanh layers | ") and lines[3].startswith("| 3 tanh layers | ")
    assert all(float(cell) >= 0 for cell in lines[3].strip("| ").split(" | ")[1:])  # 0.00 on a fast machine
    assert lines[4].startswith("| 784-512-256-10, traced NumPy | ") and lines[4].endswith(" | - |")


def test_a_case_name_that_matches_nothing_is_an_error():
    result = subprocess.run([sys.executable, str(BENCH), "--only", "no such network"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "no case's name contains 'no such network'" in result.stderr


def test_a_network_the_compiled_backend_does_not_print_is_n_a_for_it():
    traced = next(case for case in bench.CASES if "traced" in case.name)
    network = traced.network()
    assert peer_symprop("numba", True)(network, bench.values_of(traced, network)) is None

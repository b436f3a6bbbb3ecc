"""Smoke tests of benchmarks/bench.py (a --quick run on one tiny preset finishes and writes its files)
and of benchmarks/bench_batchnorm.py (a --quick run passes its agreement check and prints its tables).

No timing assertions: the numbers depend on the machine. The run is a subprocess (the benchmark
sets the BLAS thread count and imports PyTorch, which should not leak into the test session).
"""

import csv
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "benchmarks" / "bench.py"
CSV_COLUMNS = ["section", "case", "network", "batch", "impl", "metric", "value", "unit", "note"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    files = {"csv": out / "quick.csv", "plot": out / "quick.png", "md": out / "quick.md"}
    command = [sys.executable, str(BENCH), "--quick", "--only", "sigmoid_mse_2_2_1",
               "--csv", str(files["csv"]), "--plot", str(files["plot"]), "--md", str(files["md"])]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)
    return result, files


def test_quick_run_prints_every_table(quick_run):
    result, files = quick_run
    assert result.returncode == 0, result.stderr[-3000:]
    stdout = result.stdout
    for heading in ("## 1. Gradient time per call", "## 2. Derivation + generation",
                    "## 3. Peak memory", "## 4. Goals"):
        assert heading in stdout
    assert "| network | N | hand µs | gen µs (×hand)" in stdout
    assert "| sigmoid_mse_2_2_1 | 1 |" in stdout             # the one network timed
    assert "| width | layers |" in stdout and "| depth | layers |" in stdout
    assert "| goal | measured worst case | status |" in stdout
    assert "784-256-10 |" not in stdout.split("## 2.")[0]    # --only kept the others out
    assert files["md"].read_text(encoding="utf-8").startswith("# symprop benchmark")


def test_quick_run_writes_the_csv(quick_run):
    result, files = quick_run
    assert result.returncode == 0, result.stderr[-3000:]
    with open(files["csv"], newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CSV_COLUMNS
        rows = list(reader)
    assert {row["section"] for row in rows} >= {"time", "generate", "memory", "goal"}
    timed = {row["impl"] for row in rows if row["section"] == "time" and row["metric"] == "median" and row["value"]}
    assert {"hand", "gen", "gen_noval", "loss"} <= timed
    widths = [row for row in rows if row["section"] == "generate" and row["impl"] == "width"]
    assert widths and all(float(row["value"]) > 0 for row in widths)


def test_quick_run_writes_a_png(quick_run):
    result, files = quick_run
    assert result.returncode == 0, result.stderr[-3000:]
    if importlib.util.find_spec("matplotlib") is None:
        pytest.skip("matplotlib is not installed: the benchmark writes no figure")
    data = files["plot"].read_bytes()
    assert data.startswith(PNG_MAGIC) and len(data) > 10_000


BATCHNORM = ROOT / "benchmarks" / "bench_batchnorm.py"


def test_batchnorm_quick_run_checks_agreement_and_prints_the_table():
    """benchmarks/bench_batchnorm.py --quick: the gradients agree before timing, the tables print."""
    result = subprocess.run([sys.executable, str(BATCHNORM), "--quick"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    stdout = result.stdout
    agreement = next(line for line in stdout.splitlines() if line.startswith("Agreement with the hand-written"))
    assert agreement.endswith(": passed") and "gen " in agreement and "gen_noval " in agreement
    assert "| implementation | best µs | median µs | × hand (best) | loops |" in stdout
    for row in ("| hand-written NumPy (compact batchnorm formula) | ",
                "| generated `gradients`, VALIDATE True (default) | ",
                "| generated `gradients`, VALIDATE False | ",
                "| PyTorch autograd, float64, 1 thread | "):
        assert row in stdout
    assert stdout.count("- goal generated <= 1.1x hand-written, VALIDATE") == 2
    assert "| `dL_dW1 = _weight_gradient(x, delta1)` |" in stdout     # the line timings
    assert "| check | µs |" in stdout and "| generated | µs | faster form | µs |" in stdout


CNN = ROOT / "benchmarks" / "bench_cnn.py"


def test_cnn_quick_run_checks_agreement_and_prints_the_tables():
    """benchmarks/bench_cnn.py --quick: the implementations agree before timing, the tables print."""
    result = subprocess.run([sys.executable, str(CNN), "--quick"], cwd=ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    stdout = result.stdout
    assert "## Agreement (loss and every gradient, normwise relative; must be <= 1e-10): passed" in stdout
    assert "| implementation | vs hand-written | vs symprop.reference |" in stdout
    header = ("| implementation | best µs | median µs | × torch (best) | × hand (best) | page faults / call | "
              "peak MB / call | kept MB | loops |")
    assert stdout.count(header) == 2                                  # malloc as started, and tuned
    for row in ("| generated `loss_and_gradients`, VALIDATE True (default) | ",
                "| generated `loss_and_gradients`, VALIDATE False | ",
                "| hand-written NumPy (im2col once, pool by reshape) | ",
                "| PyTorch autograd, float64, 1 thread | "):
        assert stdout.count(row) == 2
    assert "| malloc | gen / torch | gen noval / torch | gen / hand | gen noval / hand | hand / torch |" in stdout
    assert "### Statements of the generated `loss_and_gradients`" in stdout            # the line timings
    assert "### Statements of `hand_cnn`" in stdout and "| `columns = np.ascontiguousarray(" in stdout
    assert "| generated | µs | faster form | µs |" in stdout and "| instead of | form | code | µs |" in stdout


def test_peers_quick_run_checks_agreement_and_prints_the_table():
    # every implementation installed is first checked against the hand-written gradients
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_peers.py"), "--quick"], cwd=ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    header, rule, row = result.stdout.splitlines()[:3]
    assert header.startswith("| network | N | hand µs | ") and "symprop numpy µs (×hand)" in header
    assert row.startswith("| 2-2-1 sigmoid, MSE | 1 | ")
    assert row.count("|") == header.count("|")  # a figure for every column
    if importlib.util.find_spec("numba"):
        assert "symprop numba µs (×hand)" in header

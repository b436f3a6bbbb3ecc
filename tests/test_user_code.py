"""A user's misbehaving code under `check --against` (run in a child process, bounded by
`--timeout`) and under tracing: every failure is one line and exit 1 (or 2 when the code cannot
be imported or traced), never exit 0, a traceback or a hang; what it prints goes to stderr."""

import json
import os

import pytest
from conftest import run_cli

from symprop.cli import main

USER = '''
import os
import sys
import time

import numpy as np

sys.path.insert(0, {generated!r})
import sigmoid_mse_2_2_1 as generated


def right(x, y, W1, b1, W2, b2):
    return generated.gradients(x=x, y=y, W1=W1, b1=b1, W2=W2, b2=b2)


def halved(x, y, W1, b1, W2, b2):
    grads = dict(right(x, y, W1, b1, W2, b2))
    grads["b1"] = grads["b1"] / 2
    return grads


def exits(**arrays):
    os._exit(0)


def interrupted(**arrays):
    raise KeyboardInterrupt


def base(**arrays):
    raise BaseException("custom base")


def ragged(**arrays):
    return {{"W1": [[1.0], [1.0, 2.0]], "b1": [0.0, 0.0], "W2": [[0.0], [0.0]], "b2": [0.0]}}


def hangs(**arrays):
    while True:
        time.sleep(0.01)


def crashes(**arrays):
    import ctypes
    ctypes.string_at(0)


def prints(x, y, W1, b1, W2, b2):
    print("HELLO FROM USER CODE")
    return right(x, y, W1, b1, W2, b2)


def infinite(x, y, W1, b1, W2, b2):
    grads = dict(right(x, y, W1, b1, W2, b2))
    grads["W1"] = np.full_like(W1, np.inf)
    return grads


def loops(X):
    while True:
        pass


def quits(X):
    sys.exit(0)


def loss(X):
    return np.sum(X ** 2)
'''


@pytest.fixture
def folder(tmp_path, root):
    (tmp_path / "user.py").write_text(USER.format(generated=str(root / "generated")))
    (tmp_path / "exit_at_import.py").write_text("import sys\nsys.exit(0)\n\ndef backward(**arrays):\n    return {}\n")
    (tmp_path / "broken.py").write_text("def backward(:\n")
    import numpy as np
    np.savez(tmp_path / "v.npz", X=np.ones((2, 2)))
    return tmp_path


def _line(code: str) -> int:
    """The line of USER (as written to user.py) that holds `code`."""
    return next(i for i, line in enumerate(USER.splitlines(), 1) if line.strip() == code)


def _filled(text: str, folder) -> str:
    for code in ("raise KeyboardInterrupt", 'raise BaseException("custom base")', "sys.exit(0)"):
        text = text.replace("{" + code + "}", str(_line(code)))
    return text.replace("{folder}", str(folder))


def run(folder, *args):
    return run_cli(folder, *args)


AGAINST = [  # function, exit status, the line that says what happened (stdout for 1, stderr for 2)
    ("user.py:right", 0, "all gradients agree"),
    ("user.py:halved", 1, "FAILED: 1 array(s) wrong: b1"),
    ("exit_at_import.py:backward", 2, "exit_at_import.py called sys.exit(0) while being imported"),
    ("broken.py:backward", 2, "cannot import broken.py: SyntaxError"),
    ("user.py:nosuch", 2, "user.py has no function nosuch"),
    ("user.py:exits", 1, "FAILED: exits: its process exited (status 0) while calling exits, without an answer"),
    ("user.py:interrupted", 1, "FAILED: interrupted raised KeyboardInterrupt (at {folder}/user.py, line "
                               "{raise KeyboardInterrupt}: raise KeyboardInterrupt)"),
    ("user.py:base", 1, "FAILED: base raised BaseException: custom base (at {folder}/user.py, line "
                        "{raise BaseException(\"custom base\")}"),
    ("user.py:ragged", 1, "W1                    -            -  wrong shape  (not an array: setting an array "
                          "element with a sequence."),
    ("user.py:crashes", 1, "FAILED: crashes: its process crashed (SIGSEGV) while calling crashes"),
]


@pytest.mark.parametrize("function, status, line", AGAINST, ids=[a[0] for a in AGAINST])
def test_a_backward_that_misbehaves_is_one_line(folder, function, status, line):
    got, out, err = run(folder, "check", "sigmoid_mse_2_2_1", "--against", function)
    assert got == status, (out, err)
    line = _filled(line, folder)
    if status == 2:
        assert err.startswith("symprop: --against ") and err.count("\n") == 1 and line in err, err
        assert out == ""
    else:
        assert line in out, out
        assert "Traceback" not in out + err


def test_a_backward_that_never_returns_is_stopped_at_the_timeout(folder):
    status, out, err = run(folder, "check", "sigmoid_mse_2_2_1", "--against", "user.py:hangs", "--timeout", "1")
    assert status == 1
    assert "FAILED: hangs: calling hangs took longer than 1 s (--timeout); stopped" in out


def test_json_stays_json_when_the_backward_prints_or_returns_infinities(folder, capfd):
    status, out, _ = run(folder, "check", "sigmoid_mse_2_2_1", "--against", "user.py:prints", "--json")
    assert status == 0 and json.loads(out)["ok"] is True
    assert "HELLO FROM USER CODE" in capfd.readouterr().err and "HELLO" not in out  # the child's stderr

    def refuse(constant):
        raise AssertionError(constant)
    status, out, _ = run(folder, "check", "sigmoid_mse_2_2_1", "--against", "user.py:infinite", "--json")
    assert status == 1
    assert json.loads(out, parse_constant=refuse)["first_wrong"] == "W1"


@pytest.mark.parametrize("function, rule", [
    ("exit_at_import.py:backward", "exit_at_import.py called sys.exit(0) while being imported"),
    ("user.py:quits", "user.py:quits: quits raised SystemExit: 0 (at {folder}/user.py, line {sys.exit(0)}: "
                      "sys.exit(0))"),
])
def test_tracing_code_that_exits_is_one_line(folder, function, rule):
    status, out, err = run(folder, "derive", function, "--values", "v.npz")
    assert status == 2 and out == ""
    assert err.count("\n") == 1 and _filled(rule, folder) in err, err


def test_tracing_code_that_never_returns_is_stopped_at_the_timeout(folder):
    status, _, err = run(folder, "derive", "user.py:loops", "--values", "v.npz", "--timeout", "1")
    assert status == 2
    assert err == "symprop: user.py:loops: importing and tracing loops took longer than 1 s (--timeout); stopped\n"
    assert run(folder, "derive", "user.py:loss", "--values", "v.npz", "--timeout", "60")[0] == 0  # the timer is off


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan"])
def test_a_bad_timeout_is_a_usage_error(folder, value, capsys):
    assert main(["check", "sigmoid_mse_2_2_1", "--timeout", value]) == 2
    assert f"--timeout: expected a number of seconds > 0, not '{value}'" in capsys.readouterr().err


def test_the_child_process_is_gone_after_the_check(folder):
    run(folder, "check", "sigmoid_mse_2_2_1", "--against", "user.py:right")
    assert _children_running_the_user_code() == []


def _children_running_the_user_code() -> list:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue  # ended meanwhile
        if parent == os.getpid() and "_child.py" in command:
            found.append(int(entry))
    return found


FORKS = '''
import os
import sys
import time

sys.path.insert(0, {generated!r})
import sigmoid_mse_2_2_1 as generated


def right(x, y, W1, b1, W2, b2):
    return generated.gradients(x=x, y=y, W1=W1, b1=b1, W2=W2, b2=b2)


def forks_wrong(**arrays):
    pid = os.fork()  # the forked copy computes a wrong W1, and must not be the one that answers
    grads = dict(right(**arrays))
    if pid == 0:
        grads["W1"] = grads["W1"] * 2
    return grads


def forks_sleeper(**arrays):
    if os.fork() == 0:
        time.sleep(30)
        os._exit(0)
    return right(**arrays)


def string_loss(**arrays):
    return "abc", right(**arrays)
'''


@pytest.fixture
def forking(folder, root):
    (folder / "forks.py").write_text(FORKS.format(generated=str(root / "generated")))
    (folder / "slow_import.py").write_text("import time\ntime.sleep(30)\n\ndef backward(**arrays):\n    return {}\n")
    (folder / "exit_import.py").write_text("import os\nos._exit(3)\n")
    return folder


@pytest.mark.parametrize("module, rule", [
    ("slow_import.py", "backward: importing it took longer than 1 s (--timeout); stopped"),
    ("exit_import.py", "backward: its process exited (status 3) while importing it"),
])
def test_a_module_that_hangs_or_exits_while_imported_is_exit_2(forking, module, rule):
    status, out, err = run(forking, "check", "sigmoid_mse_2_2_1", "--against", f"{module}:backward", "--timeout", "1",
                           "--json")
    assert status == 2 and out == "" and err.count("\n") == 1 and rule in err, err


def test_only_the_process_symprop_started_answers(forking):
    import time
    for _ in range(3):  # the forked copy's wrong answer would win now and then
        assert run(forking, "check", "sigmoid_mse_2_2_1", "--against", "forks.py:forks_wrong")[0] == 0
    start = time.monotonic()
    assert run(forking, "check", "sigmoid_mse_2_2_1", "--against", "forks.py:forks_sleeper")[0] == 0
    assert time.monotonic() - start < 20 and _children_running_the_user_code() == []


def test_a_loss_that_is_not_a_number_is_one_line(forking):
    status, out, _ = run(forking, "check", "sigmoid_mse_2_2_1", "--against", "forks.py:string_loss")
    assert status == 1 and "FAILED: string_loss returned a loss that is not a number (str: 'abc')" in out


def test_locals_named_like_the_generated_code_are_renamed_when_traced(folder):
    (folder / "under.py").write_text("import numpy as np\n\n\ndef loss(X):\n    _hidden = np.tanh(X)\n"
                                     "    dL_dX = _hidden * 2\n    return np.sum(dL_dX ** 2)\n")
    status, out, err = run(folder, "derive", "under.py:loss", "--values", "v.npz", "--timeout", "20")
    assert status == 0, err
    assert "  v_hidden = tanh(X)" in out and "  v_dL_dX = 2*v_hidden" in out

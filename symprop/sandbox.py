"""A user's function run where it cannot take symprop down: a child process, with a time limit.

`symprop check --against MODULE:FUNCTION` imports and calls the user's backward in a child process
(`symprop/_child.py`) through a `ChildFunction`, which `check` calls as it calls any function: a
hang, `sys.exit` or `os._exit`, a crash (a segmentation fault), an import that fails or a return
value that cannot be read back is one line in the report (exit 1), or an error when the module
cannot be imported (exit 2); never exit 0, never a traceback, never a hang beyond `timeout`
seconds. What the user's code prints goes to standard error, so `--json` stays JSON.

`time_limit` bounds code that must run in this process (tracing a function: the program holds
its symbolic arrays) with the interval timer: a loop that never ends is stopped with one line.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import select
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

from .errors import UsageError

TIMEOUT = 300.0  # seconds: the contract's default for --timeout
CHILD = Path(__file__).with_name("_child.py")


class Failed(RuntimeError):
    """The user's function failed in its child process: one line."""


class ChildFunction:
    """MODULE:FUNCTION in a child process: `__signature__` and `__name__` as the function's own,
    and calling it sends the arguments there and brings the result back."""

    def __init__(self, spec: str, label: str, timeout: float = TIMEOUT):
        self.spec, self.label, self.timeout = spec, label, timeout
        self.process = None
        self.__name__ = spec.rpartition(":")[2] or "function"
        self._start()

    def _start(self) -> None:
        self.process = subprocess.Popen([sys.executable, str(CHILD)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        env={**os.environ, "PYTHONSAFEPATH": "1"},  # not symprop/ on sys.path
                                        start_new_session=True)  # a group of its own: what it forks ends with it
        answer = self._ask(("import", self.spec, os.getcwd(), self.label), "importing it")
        if answer[0] == "failed":
            self.close()
            raise UsageError(answer[1])
        _, self.__name__, parameters, self.filename = answer
        if parameters is not None:
            self.__signature__ = inspect.Signature(
                [inspect.Parameter(name, inspect._ParameterKind(kind), default=None if has_default else
                                   inspect.Parameter.empty) for name, kind, has_default in parameters])

    def __call__(self, **arguments):
        if self.process is None or self.process.poll() is not None:  # a call before ended the child
            self._start()
        answer = self._ask(("call", arguments), f"calling {self.__name__}")
        if answer[0] == "failed":
            raise Failed(answer[1])
        try:
            return pickle.loads(answer[1])
        except Exception as error:  # an object of the user's own class, which this process cannot import
            raise Failed(f"{self.__name__} returned an object symprop cannot read back "
                         f"({type(error).__name__}: {error}); return NumPy arrays") from None

    def _ask(self, request, doing: str):
        """Send `request`; the answer, or Failed/UsageError saying why there is none."""
        data = pickle.dumps(request, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.process.stdin.write(struct.pack(">Q", len(data)) + data)
            self.process.stdin.flush()
            header = self._receive(8, doing)
            return pickle.loads(self._receive(struct.unpack(">Q", header)[0], doing))
        except BrokenPipeError:
            self._ended(doing)

    def _receive(self, size: int, doing: str) -> bytes:
        deadline = time.monotonic() + self.timeout
        stream, chunks, count = self.process.stdout, [], 0
        while count < size:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([stream], [], [], max(left, 0))
            if not ready:
                self.close()
                raise Failed(f"{self.__name__}: {doing} took longer than {self.timeout:g} s (--timeout); stopped")
            chunk = os.read(stream.fileno(), min(size - count, 1 << 20))
            if not chunk:
                self._ended(doing)
            chunks.append(chunk)
            count += len(chunk)
        return b"".join(chunks)

    def _ended(self, doing: str):
        """The child ended without an answer: sys.exit or os._exit, or a crash."""
        status = self.process.wait()
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)  # what it forked
        self.process = None
        if status < 0:
            try:
                name = signal.Signals(-status).name
            except ValueError:
                name = f"signal {-status}"
            raise Failed(f"{self.__name__}: its process crashed ({name}) while {doing}")
        raise Failed(f"{self.__name__}: its process exited (status {status}) while {doing}, without an answer "
                     "(os._exit in the user's code?)")

    def close(self) -> None:
        if self.process is not None:
            with contextlib.suppress(OSError):
                os.killpg(self.process.pid, signal.SIGKILL)  # the child and anything it forked
            with contextlib.suppress(OSError):
                self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                with contextlib.suppress(OSError):
                    stream.close()
            self.process = None

    def __del__(self):
        self.close()


class TimeLimit(BaseException):
    """Raised into the user's code when its time is up (a BaseException: `except Exception` in
    the user's code does not swallow it)."""


@contextlib.contextmanager
def time_limit(seconds: float, what: str):
    """Run the body for at most `seconds` (the main thread of a Unix process; elsewhere without a
    limit): UsageError "WHAT took longer than S s (--timeout)" when it runs over."""
    if seconds is None or not hasattr(signal, "setitimer") or signal.getsignal(signal.SIGALRM) not in (
            signal.SIG_DFL, signal.SIG_IGN, None):
        yield
        return

    def expire(signum, frame):
        raise TimeLimit

    try:
        previous = signal.signal(signal.SIGALRM, expire)
    except ValueError:  # not the main thread
        yield
        return
    try:
        signal.setitimer(signal.ITIMER_REAL, seconds)  # inside: a limit of microseconds may expire at once
        yield
    except TimeLimit:
        raise UsageError(f"{what} took longer than {seconds:g} s (--timeout); stopped") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)

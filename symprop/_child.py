"""Importing and calling a user's function, in this process or in a child process of its own.

`import_function("FILE.py:FUNCTION" or "MODULE:FUNCTION")` imports the user's module as `python
FILE.py` would see it (its folder importable); `where(error, function)` is the user's own file and
line of an exception. Both are used in-process (tracing) and by the child process that `symprop
check --against` runs the user's backward in (`symprop.sandbox`): run as a script, this file
serves requests on its standard input and answers on its standard output, which it keeps for
itself; whatever the user's code prints goes to standard error. It imports nothing of symprop
(the child starts in a fraction of a second) and nothing but the standard library before the
user's code does.

Protocol: each message is a pickled tuple, preceded by its length (8 bytes, big-endian).
    ("import", spec, cwd)  ->  ("imported", name, parameters, filename) | ("failed", message)
    ("call", kwargs)       ->  ("returned", pickled result) | ("failed", message)
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import pickle
import struct
import sys
import traceback
from pathlib import Path


class ImportFailed(Exception):
    """The user's module or function cannot be imported: one line."""


def import_function(spec: str, label: str):
    """The function FUNCTION of MODULE (a dotted name importable from the current folder, or a
    path to a .py file); ImportFailed with one line naming `label` otherwise. The module's own
    sys.exit at import, or any exception, is a failure, never an exit."""
    module_name, sep, function_name = spec.rpartition(":")
    if not sep or not module_name or not function_name.isidentifier():
        raise ImportFailed(f"{label}: expected MODULE:FUNCTION")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name)
            if not path.exists():
                raise ImportFailed(f"{label}: no such file {path}")
            sys.path.insert(0, str(path.resolve().parent))  # as `python FILE.py`: its folder is importable
            module_spec = importlib.util.spec_from_file_location(path.stem, path)
            module = importlib.util.module_from_spec(module_spec)
            module_spec.loader.exec_module(module)
        else:
            sys.path.insert(0, str(Path.cwd()))
            module = importlib.import_module(module_name)
    except ImportFailed:
        raise
    except SystemExit as error:
        call = error.code if isinstance(error, OsExit) else f"sys.exit({error.code!r})"
        raise ImportFailed(f"{label}: {module_name} called {call} while being imported") from None
    except Exception as error:
        raise ImportFailed(f"{label}: cannot import {module_name}: {type(error).__name__}: {error}") from None
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ImportFailed(f"{label}: {module_name} has no function {function_name}")
    return function


def where(error: BaseException, function) -> str:
    """" (at FILE, line N: CODE)": the deepest frame of the function's own file, else the deepest
    frame below the caller."""
    frames = traceback.extract_tb(error.__traceback__)[1:]  # [0] is the caller's call
    if not frames:
        return ""
    own = getattr(getattr(function, "__code__", None), "co_filename", None)
    frame = next((f for f in reversed(frames) if f.filename == own), frames[-1])
    code = f": {frame.line}" if frame.line else ""
    return f" (at {frame.filename}, line {frame.lineno}{code})"


class OsExit(SystemExit):
    """os._exit(status) called by the user's code imported or traced in symprop's own process,
    made an exception there (`cli`); its code is the call, "os._exit(0)"."""


def describe(error: BaseException, label: str, function) -> str:
    """"FUNCTION raised TYPE: message (at FILE, line N: CODE)", one line."""
    message = str(error).splitlines()[0] if str(error) else ""
    return f"{label} raised {type(error).__name__}{': ' + message if message else ''}{where(error, function)}"


# ---------------------------------------------------------------------------------------------
# The child process


def _read(stream):
    header = stream.read(8)
    if len(header) < 8:
        return None
    (size,) = struct.unpack(">Q", header)
    return pickle.loads(stream.read(size))


def _write(stream, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack(">Q", len(data)) + data)
    stream.flush()


def _serve() -> None:
    requests = os.fdopen(os.dup(0), "rb")
    answers = os.fdopen(os.dup(1), "wb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the user's input() reads nothing, never the requests
    os.dup2(2, 1)  # the user's print goes to standard error, never into the answers
    function, label = None, "function"
    server = os.getpid()  # a process the user's code forks never answers: it ends when the call returns
    while (request := _read(requests)) is not None:
        if request[0] == "import":
            _, spec, cwd, label = request
            os.chdir(cwd)
            try:
                function = import_function(spec, label)
            except ImportFailed as error:
                _write(answers, ("failed", str(error)))
                continue
            except BaseException as error:  # KeyboardInterrupt raised by the module itself
                _write(answers, ("failed", f"{label}: importing it raised {type(error).__name__}"))
                continue
            label = function.__name__
            try:
                parameters = [(p.name, p.kind.value, p.default is not p.empty)
                              for p in inspect.signature(function).parameters.values()]
            except (TypeError, ValueError):
                parameters = None
            filename = getattr(getattr(function, "__code__", None), "co_filename", "")
            _write(answers, ("imported", label, parameters, filename))
        elif request[0] == "call":
            try:
                result = function(**request[1])
            except BaseException as error:  # SystemExit, KeyboardInterrupt, anything: the code under check
                if os.getpid() != server:
                    os._exit(0)
                _write(answers, ("failed", describe(error, label, function)))
                continue
            if os.getpid() != server:
                os._exit(0)
            try:
                data = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
            except Exception as error:
                _write(answers, ("failed", f"{label} returned a {type(result).__name__} that cannot be sent back "
                                           f"({type(error).__name__}: {error}); return NumPy arrays"))
                continue
            _write(answers, ("returned", data))


if __name__ == "__main__":
    _serve()

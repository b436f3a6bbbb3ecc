"""Training data for `symprop train --data`: loading an .npz file, minibatches, accuracy.

The file holds the input and the target under the spec's names (x and y by default), one sample
per row; it may also hold starting values of parameters. Only row-layout networks whose batch size
is left open can train on data: minibatches and the whole set differ in size.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .symbolic.spec import Network, NotReadable, read_file

from .errors import UsageError


def load_npz(path, option: str) -> dict:
    """The arrays of an .npz file by name; UsageError naming `option` and the file if it cannot be read."""
    where = f"{option} {path}"
    try:
        content = read_file(path)
        if content[:6] == b"\x93NUMPY":
            raise UsageError(f"{where}: not an .npz archive of arrays (written by numpy.savez): a .npy file, "
                             "which holds one array without a name")
        if content[:2] != b"PK" and content:  # a zip archive (PK\x05\x06 when empty); NumPy would unpickle the rest
            raise UsageError(f"{where}: not an .npz archive of arrays (written by numpy.savez)")
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except UsageError:
        raise
    except NotReadable as error:
        raise UsageError(f"{where}: {error}") from None
    except FileNotFoundError:
        raise UsageError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{where}: is a folder, not an .npz file") from None
    except OSError as error:
        raise UsageError(f"{where}: cannot read the file ({error.strerror or error})") from None
    except Exception as error:  # a .npy file (no archive), a text file, an empty file, pickled objects
        raise UsageError(f"{where}: not an .npz archive of arrays (written by numpy.savez): "
                         f"{type(error).__name__}: {error}".split("\n")[0]) from None
    for name, array in arrays.items():
        if not isinstance(array, np.ndarray):  # a member that is not a .npy file: NumPy hands its bytes
            raise UsageError(f"{where}: not an .npz archive of arrays (written by numpy.savez): its member "
                             f"{name!r} is not a .npy array")
        if array.dtype.kind not in "biuf":
            raise UsageError(f"{where}: the array {name!r} holds {_KINDS.get(array.dtype.kind, 'non-numeric')} "
                             f"values ({array.dtype}): expected real numbers (float, int or bool)")
    return arrays


_KINDS = {"c": "complex", "M": "datetime", "m": "timedelta", "U": "string", "S": "bytes", "V": "structured",
          "O": "object"}


def load_data(network: Network, path) -> dict:
    """The arrays of an .npz file by name; UsageError (one line naming the file) if it does not fit."""
    path = Path(path)
    where = f"--data {path}"
    if network.layout != "row" or network.batch is not None:
        raise UsageError(f"{where}: training on data needs a row-layout network whose batch size is open "
                         f"({network.name} has " + ("the column layout" if network.layout != "row" else
                                                    f"batch = {network.batch}") + ")")
    arrays = load_npz(path, "--data")
    shapes = network.shapes()
    unknown = [name for name in arrays if name not in shapes]
    missing = [name for name in (network.input, network.target) if name not in arrays]
    if unknown or missing:
        problem = (f"it has no {' or '.join(map(repr, missing))}" if missing else
                   f"{', '.join(map(repr, unknown))} is not an array of {network.name}")
        raise UsageError(f"{where}: {problem} (the arrays of {network.name} are {', '.join(shapes)}; "
                         f"the file needs {network.input!r} and {network.target!r}, one sample per row)")
    samples = {len(arrays[name]) if np.ndim(arrays[name]) else None for name in (network.input, network.target)}
    if len(samples) != 1 or None in samples or 0 in samples:
        raise UsageError(f"{where}: {network.input!r} has shape {np.shape(arrays[network.input])} and "
                         f"{network.target!r} {np.shape(arrays[network.target])}: expected one sample per row, "
                         "the same number of rows, at least one")
    target = np.asarray(arrays[network.target])
    if network.loss.kind == "multiclass_hinge" and not network.loss.labels and target.ndim == 2:
        one_hot = np.all((target == 0) | (target == 1), axis=-1) & (np.sum(target, axis=-1) == 1)
        if not np.all(one_hot):
            row = int(np.argmin(one_hot))
            raise UsageError(f"{where}: {network.target!r} row {row} is not one-hot: multiclass_hinge takes "
                             "one-hot rows (or labels = true and integer labels)")
    return arrays


def epochs_of(size: int, batch_size: int, seed: int):
    """Endless epochs: each a list of index arrays, the minibatches of one seeded shuffle."""
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(size)
        yield [order[start:start + batch_size] for start in range(0, size, batch_size)]


def is_classifier(network: Network) -> bool:
    """Whether the network classifies: a cross-entropy loss, or the multiclass hinge on scores."""
    return network.loss.kind in ("cross_entropy", "binary_cross_entropy", "multiclass_hinge")


def accuracy(network: Network, outputs, target) -> float | None:
    """The fraction of samples classified right, for a classifier; None for other networks."""
    outputs, target = np.asarray(outputs), np.asarray(target)
    if network.loss.kind in ("cross_entropy", "multiclass_hinge"):  # the highest score's class
        labels = target if network.loss.labels else np.argmax(target, axis=-1)
        return float(np.mean(np.argmax(outputs, axis=-1) == labels))
    if network.loss.kind == "binary_cross_entropy":
        return float(np.mean((outputs > 0.5) == (target > 0.5)))
    return None

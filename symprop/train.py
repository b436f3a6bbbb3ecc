"""`symprop train`: plain gradient descent driven by the generated gradients.

The seeds train their networks with hand-derived (and wrong) gradients; this runs the same
trainings with the generated ones, or with any other gradient function plugged in.

Python API (for notebooks)::

    from symprop.train import train
    history = train("sigmoid_shared_bias_2_2_2", lr=0.5, steps=10_000, freeze=("b1", "b2"))
    history.losses[-1], history.outputs
    history.plot()                     # matplotlib, optional

Command line: `symprop train NET [--lr F] [--steps N] [--freeze NAME,...] [--every K]
[--plot FILE.png] [--save FILE.npz] [--seed S]`, added to the `symprop` parser by `register`.

NumPy only at run time; matplotlib is needed for plots only.
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from . import symbolic
from .symbolic.spec import Network

from .check import random_values
from .data import accuracy, epochs_of, is_classifier, load_data
from .limits import require_memory
from .errors import UsageError
from .codegen.files import atomic_write, compile_module, require_writable


@dataclass
class History:
    """A training run.

    `steps[i]` is the number of updates done when `losses[i]` was measured: 0, every, 2 * every,
    ... and finally the total number of steps. With `every=1`, `losses` holds the loss before
    each update and then the loss after the last one.
    """

    steps: list[int]
    losses: list[float]
    arrays: dict  # name -> the final array: input, target and every (trained or frozen) parameter
    outputs: np.ndarray  # the network output yhat with the final arrays
    name: str = ""
    lr: float = 0.0
    frozen: tuple[str, ...] = ()
    trained: tuple[str, ...] = ()
    epochs: list = field(default_factory=list)  # training on data: the epochs done at each record
    accuracies: list = field(default_factory=list)  # a classifier on data: the fraction right

    @property
    def loss(self) -> float:
        """The final loss, after the last update."""
        return self.losses[-1]

    def plot(self, path=None, *, ax=None, title=None):
        """The loss curve on `ax` (or a new figure), saved to `path` when given; returns the figure."""
        return plot_losses(self, path, ax=ax, title=title)


def train(network, *, lr: float = 0.01, steps: int = 100, freeze=(), values=None, seed: int = 0,
          gradients=None, backward=None, every: int = 1, callback=None, module=None,
          data=None, batch_size: int | None = None, epochs: int | None = None, shuffle_seed: int = 0) -> History:
    """Gradient descent: `steps` updates `p <- p - lr * dL/dp` of every parameter not frozen.

    network   a `Network`, a preset name or a spec path.
    values    arrays by name that replace the spec's [values]; whatever is still missing gets
              seeded random values (`seed`), as `symprop check` does. The caller's arrays are
              never modified: training works on float64 copies.
    freeze    parameter names held fixed (a list, or one string "b1,b2").
    gradients a function called with every array by keyword, returning (loss, dict of gradients)
              like the generated `loss_and_gradients` (the default).
    backward  instead of `gradients`: a function returning only the dict of gradients (a
              hand-written backward pass); the loss then comes from the generated `loss`.
    every     record the loss (and call `callback(step, loss, arrays)`) every `every` steps;
              the final loss, after the last update, is always recorded.
    module    the generated module to use (default: compiled in memory from `network`).
    data      the input and target arrays to learn from, one sample per row (with an initial
              state and the loss's mask, when the spec has them; and perhaps starting values of
              parameters), by name. Each step then takes a minibatch of `batch_size`
              samples (default: all) from a seeded shuffle (`shuffle_seed`) of the data, and the
              loss (and a classifier's accuracy) over all the data is recorded before the first
              step and after each epoch; `epochs`, when given, sets steps to epochs * minibatches.

    Raises ValueError on a bad argument (unknown frozen names, lr <= 0, steps < 0, ...) and
    when a gradient function returns a missing gradient or one of the wrong shape.
    """
    if isinstance(network, (str, os.PathLike)):
        network = symbolic.load(network)
    if not isinstance(network, Network):
        raise TypeError(f"train takes a Network, a preset name or a spec path, not {type(network).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
    if data is not None:
        missing = [name for name in (network.input, network.target) if name not in data]
        if missing:  # the targets would be drawn at random: nothing to learn
            raise ValueError(f"data has no {' or '.join(map(repr, missing))}: it needs the input "
                             f"{network.input!r} and the target {network.target!r}, one sample per row")
        values = {**(values or {}), **data}
        size = len(np.asarray(data[network.input]))
        if size == 0:
            raise ValueError(f"data holds no samples ({network.input!r} has no rows)")
        batch_size = size if batch_size is None else batch_size
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
        if epochs is not None:
            if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
                raise ValueError(f"epochs must be an integer >= 0, got {epochs!r}")
            steps = epochs * -(-size // batch_size)
    lr = _check_lr(lr)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"steps must be an integer >= 0, got {steps!r}")
    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise ValueError(f"every must be an integer >= 1, got {every!r}")
    if gradients is not None and backward is not None:
        raise ValueError("pass either gradients= (returning (loss, gradients)) or backward= "
                         "(returning the gradients only), not both")
    frozen = check_freeze(network, freeze)
    trained = tuple(p for p in network.parameters if p not in frozen)
    arrays = initial_values(network, values, seed)
    if module is None:
        module = compile_module(network)
        # the starting values are checked (initial_values); the later ones come from the updates,
        # and a run that diverges to inf or NaN is reported by its loss, not as bad input
        module.CHECK_FINITE = False

    if backward is not None:
        label = getattr(backward, "__name__", "backward")

        def loss_and_gradients(**kw):
            return module.loss(**kw), backward(**kw)

        def final_loss(**kw):
            return module.loss(**kw)
    else:
        loss_and_gradients = module.loss_and_gradients if gradients is None else gradients
        label = getattr(loss_and_gradients, "__name__", "gradients")

        def final_loss(**kw):
            return _unpack(loss_and_gradients(**kw), label)[0]

    dropout = Dropout(network, seed)
    if data is not None:
        return _train_on_data(network, module, arrays, trained, frozen, loss_and_gradients, label, lr, int(steps),
                              min(batch_size, size), shuffle_seed, callback, dropout)
    history_steps, losses = [], []
    for step in range(int(steps)):
        loss, grads = _unpack(loss_and_gradients(**dropout.on(arrays)), label)
        if step % every == 0 and dropout.masks:  # the loss recorded with dropout off
            loss = float(final_loss(**dropout.off(arrays)))
        if step % every == 0:
            history_steps.append(step)
            losses.append(loss)
            if callback is not None:
                callback(step, loss, arrays)
        updated = {}
        for name in trained:
            updated[name] = np.asarray(arrays[name] - lr * _gradient(grads, name, arrays[name], label))
        arrays.update(updated)  # only once every gradient is checked
    loss = float(final_loss(**dropout.off(arrays)))
    history_steps.append(int(steps))
    losses.append(loss)
    if callback is not None:
        callback(int(steps), loss, arrays)

    outputs = np.asarray(module.forward(**forward_arrays(network, dropout.off(arrays))))
    return History(history_steps, losses, arrays, outputs, network.name, lr, frozen, trained)


def forward_arrays(network: Network, arrays: dict) -> dict:
    """The arrays `forward` takes: the input, the dropout masks and the parameters."""
    return {n: arrays[n] for n in (network.input, *network.given, *network.parameters)}


class Dropout:
    """Dropout while training: each step draws fresh 0/1 masks (1 with probability 1 - p, from
    a generator seeded by `seed`); measurements and outputs take every mask at 1 - p, which
    switches dropout off (mask / (1 - p) = 1). Networks without dropout pass through."""

    def __init__(self, network: Network, seed: int = 0):
        self.masks = [(mask, 1 - keep) for mask, keep in network.keep.items()]
        self.row = network.layout == "row"
        self.input = network.input
        self.rng = np.random.default_rng([seed, 7])

    def _shape(self, arrays, mask):
        shape = np.shape(arrays[mask])
        return (len(arrays[self.input]),) + shape[1:] if self.row else shape

    def on(self, arrays: dict) -> dict:
        if not self.masks:
            return arrays
        return {**arrays, **{m: (self.rng.random(self._shape(arrays, m)) >= p).astype(np.float64)
                             for m, p in self.masks}}

    def off(self, arrays: dict) -> dict:
        if not self.masks:
            return arrays
        return {**arrays, **{m: np.full(self._shape(arrays, m), 1.0 - p) for m, p in self.masks}}


def _train_on_data(network, module, arrays, trained, frozen, loss_and_gradients, label, lr, steps, batch_size,
                   shuffle_seed, callback, dropout) -> History:
    """Minibatch gradient descent on `arrays`' input and target; records per epoch (see `train`)."""
    x, y = network.input, network.target
    per_sample = (x, y, *network.states, *((network.loss.mask,) if network.loss.mask else ()))
    data = {name: arrays[name] for name in per_sample}  # minibatched together; dropout masks drawn afresh
    size = len(data[x])
    record = History([], [], arrays, None, network.name, lr, frozen, trained)

    def measure(step, epoch):
        loss = float(module.loss(**dropout.off(arrays)))
        outputs = np.asarray(module.forward(**forward_arrays(network, dropout.off(arrays))))
        record.steps.append(step)
        record.losses.append(loss)
        record.epochs.append(epoch)
        score = accuracy(network, outputs, data[y])
        if score is not None:
            record.accuracies.append(score)
        record.outputs = outputs
        if callback is not None:
            callback(step, loss, arrays)

    per_epoch = -(-size // batch_size)  # minibatches in an epoch, the last one perhaps smaller
    measure(0, 0)
    shuffles = epochs_of(size, batch_size, shuffle_seed)
    step = 0
    while step < steps:
        for rows in next(shuffles)[:steps - step]:
            batch = dropout.on({**arrays, **{name: value[rows] for name, value in data.items()}})
            _, grads = _unpack(loss_and_gradients(**batch), label)
            arrays.update({name: np.asarray(arrays[name] - lr * _gradient(grads, name, arrays[name], label))
                           for name in trained})
            step += 1
        measure(step, step / per_epoch)  # after each epoch, and after the last step
    return record


def check_freeze(network: Network, freeze) -> tuple[str, ...]:
    """The frozen parameter names, in the network's order; ValueError naming any unknown one."""
    if freeze is None:
        return ()
    if isinstance(freeze, str):
        freeze = [f for f in freeze.split(",")]
    names = [str(f).strip() for f in freeze]
    names = [n for n in names if n]
    unknown = [n for n in names if n not in network.parameters]
    if unknown:
        what = "parameter" if len(unknown) == 1 else "parameters"
        raise ValueError(f"cannot freeze {', '.join(unknown)}: no such {what} in {network.name} "
                         f"(its parameters are {', '.join(network.parameters)})")
    return tuple(p for p in network.parameters if p in names)


def initial_values(network: Network, values=None, seed: int = 0) -> dict:
    """float64 copies of the starting arrays: `values`, else the spec's, else seeded random ones.

    Integer class labels stay integers. Nothing the caller passed is modified later.
    """
    if values:
        unknown = [n for n in values if n not in network.shapes()]
        if unknown:
            raise ValueError(f"unknown array(s) {', '.join(unknown)}; the arrays of {network.name} "
                             f"are {', '.join(network.shapes())}")
        network = replace(network, values={**network.values, **values})
    start = random_values(network, seed)
    if network.loss.mask and network.loss.mask not in network.values:  # not given: every step counts
        start[network.loss.mask] = np.ones_like(start[network.loss.mask])
    arrays = {}
    for name in network.shapes():
        array = np.asarray(start[name])
        if name == network.target and network.loss.labels or name == network.input and network.tokens:
            what = "class labels" if name == network.target else "tokens"
            if array.dtype.kind == "f" and not np.array_equal(array, np.round(array)):
                raise ValueError(f"array {name!r} holds {what} that are not whole numbers")
            arrays[name] = np.array(array, dtype=np.int64)
        else:
            arrays[name] = np.array(array, dtype=np.float64)  # always a copy
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"array {name!r} holds NaN or inf: the starting values must be finite")
    return arrays


def _check_lr(lr) -> float:
    try:
        value = float(lr)
    except (TypeError, ValueError):
        raise ValueError(f"lr must be a number > 0, got {lr!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}")
    return value


def _unpack(result, label):
    if isinstance(result, dict):
        raise ValueError(f"{label} returned only a dict of gradients; pass such a function as "
                         "backward=, or return (loss, gradients)")
    try:
        loss, grads = result
    except (TypeError, ValueError):
        raise ValueError(f"{label} returned {type(result).__name__}, expected (loss, dict of gradients)") from None
    if not isinstance(grads, dict):
        raise ValueError(f"{label} returned {type(grads).__name__} as gradients, expected a dict by name")
    return float(loss), grads


def _gradient(grads: dict, name: str, array: np.ndarray, label: str) -> np.ndarray:
    if name not in grads:
        raise ValueError(f"{label} returned no gradient for {name!r}")
    gradient = np.asarray(grads[name], dtype=np.float64)
    if gradient.shape != array.shape:
        raise ValueError(f"{label} returned a gradient for {name!r} of shape {gradient.shape}, "
                         f"expected {array.shape}")
    return gradient


# -------------------------------------------------------------------------------------------------
# Pictures and files


def plot_losses(history: History, path=None, *, ax=None, title=None):
    """The loss against the step (log scale when every loss is positive); returns the figure.

    Uses matplotlib's object API with the Agg canvas when it makes its own figure, so it works
    without a display and leaves pyplot's state alone. Raises ImportError without matplotlib.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError("plotting needs matplotlib: pip install matplotlib") from None
    if ax is None:
        figure = Figure(figsize=(6.4, 4.0), layout="constrained")
        FigureCanvasAgg(figure)
        ax = figure.add_subplot()
    else:
        figure = ax.figure
    losses = np.asarray(history.losses, dtype=float)
    ax.plot(history.steps, losses, color="C0", linewidth=1.5)
    if losses.size and np.all(np.isfinite(losses)) and np.all(losses > 0) and losses.max() > 10 * losses.min():
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    if title is None:
        frozen = f", frozen {', '.join(history.frozen)}" if history.frozen else ""
        title = f"{history.name}: gradient descent, lr {history.lr:g}{frozen}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if path is not None:
        atomic_write(Path(path), lambda handle: figure.savefig(handle, format=_image_format(Path(path)), dpi=100))
    return figure


def save_arrays(history: History, path) -> None:
    """Every array of the run, by name, in one .npz file (np.load gives them back exactly)."""
    atomic_write(Path(path), lambda handle: np.savez(handle, **history.arrays))


def _image_format(path: Path) -> str:
    return path.suffix[1:].lower() or "png"


# -------------------------------------------------------------------------------------------------
# Command line


def register(commands) -> None:
    """Add the `train` command to the subparsers object of the `symprop` parser."""
    p = commands.add_parser("train", help="gradient descent with the generated gradients",
                            description="Plain gradient descent from the spec's [values] (or seeded "
                            "random values), with the generated gradients.")
    p.add_argument("net", help="a preset name or a path to a spec (.toml)")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    p.add_argument("--steps", type=int, help="number of updates (default 100; with --data, 10 epochs)")
    p.add_argument("--freeze", metavar="NAME,...", default="", help="parameters held fixed, comma-separated")
    p.add_argument("--every", type=int, metavar="K", help="print the loss every K steps (default: about 10 lines; "
                   "with --data: each epoch, or the first epoch's end past each K steps)")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write the loss curve (needs matplotlib)")
    p.add_argument("--save", type=Path, metavar="FILE.npz", help="write every final array by name (np.savez)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random values the spec lacks (default 0)")
    p.add_argument("--data", type=Path, metavar="FILE.npz",
                   help="learn from the input and target arrays of this file (named as in the spec, one "
                        "sample per row; it may also hold starting values of parameters)")
    p.add_argument("--batch-size", type=int, metavar="B", help="with --data: samples per step (default: all)")
    p.add_argument("--epochs", type=int, metavar="E", help="with --data: passes over the data (instead of --steps)")
    p.add_argument("--shuffle-seed", type=int, default=0, metavar="S",
                   help="with --data: seed of the shuffle before each epoch (default 0)")
    p.set_defaults(run=run)


PLOT_FORMATS = ("png", "pdf", "svg", "jpg", "jpeg")


def run(args) -> int:
    """The `train` command: print the loss every K steps (per epoch on data), the final loss and
    outputs; save, plot.

    Every option and output path is checked before the first step; a run that diverges (its
    loss or an array becomes inf or NaN) writes nothing and exits with 1."""

    network = symbolic.load(args.net)
    frozen = _check_options(args, network)
    _check_outputs(args)
    data = load_data(network, args.data) if args.data is not None else None
    require_memory(network, len(data[network.input]) if data else 3, "training")
    module = compile_module(network)
    if data is not None:  # every array checked (shapes, labels, NaN) before anything is printed
        try:
            module.loss(**initial_values(network, data, args.seed))
        except ValueError as error:
            raise UsageError(f"--data {args.data}: {error}") from None
    module.CHECK_FINITE = False  # train() checks the starting values; a diverging run is reported below
    if data is None:
        steps = 100 if args.steps is None else args.steps
        every = args.every or max(1, -(-steps // 10))  # about ten lines, and the last
        print(f"training {network.name}: {steps} step(s) of gradient descent, lr {args.lr:g}, "
              f"frozen: {', '.join(frozen) or 'none'}; starting from {_source(network, args.seed)}")
        print(f"{'step':>10}  loss")
    else:
        size = len(data[network.input])
        batch = min(args.batch_size or size, size)
        epochs = 10 if args.steps is None and args.epochs is None else args.epochs
        steps = epochs * -(-size // batch) if epochs is not None else args.steps
        every = args.every or 1  # a line at each epoch's end, or at the first past each K steps
        print(f"training {network.name} on {args.data}: {size} samples, minibatches of {batch} (shuffle seed "
              f"{args.shuffle_seed}), {steps} step(s), lr {args.lr:g}, frozen: {', '.join(frozen) or 'none'}; "
              f"parameters from {_source(network, args.seed, given=set(data))}")
        print(f"{'epoch':>8} {'step':>8}  " + ("{:<16}accuracy".format("loss") if is_classifier(network) else "loss"))
    bar = _ProgressBar(steps) if sys.stdout.isatty() and steps >= 1000 else None
    history = None

    printed = [-1]  # the step of the last line printed

    def report(step, loss, arrays):
        if data is not None:  # called after each epoch: a line once `every` steps have passed since the last
            if step in (0, steps) or step // every > printed[0] // every:
                printed[0] = step
                epoch = round(step / -(-len(data[network.input]) // batch), 4)  # 2.5, 100001: never 1e+05
                score = accuracy(network, history_outputs(arrays), data[network.target])
                if bar is not None:
                    bar.clear()
                print(f"{epoch:>8.10g} {step:>8}  "
                      + (f"{loss:<16.10g}{score:.4f}" if score is not None else f"{loss:.10g}"))
        elif step % every == 0 or step == steps:
            if bar is not None:
                bar.clear()
            print(f"{step:>10}  {loss:.10g}", flush=bar is not None)
        if bar is not None:
            bar.update(step)

    def history_outputs(arrays):
        return module.forward(**forward_arrays(network, Dropout(network).off(arrays)))

    try:
        with np.errstate(all="ignore"):  # a diverging run is reported below, not as warnings
            history = train(network, lr=args.lr, steps=steps, freeze=frozen, seed=args.seed, callback=report,
                            module=module, data=data, batch_size=args.batch_size, shuffle_seed=args.shuffle_seed)
    except ValueError as error:  # values that do not fit the network
        where = f"--data {args.data}: " if data is not None else ""
        raise UsageError(where + str(error)) from None
    finally:
        if bar is not None:
            bar.clear()

    print(f"final loss: {history.loss:.10g}" + (f", accuracy {history.accuracies[-1]:.4f}" if history.accuracies else ""))
    if data is None:
        print(f"outputs (yhat, shape {history.outputs.shape}):")
        print(format_outputs(history.outputs))
    problem = divergence(history)
    if problem:
        unwritten = "; nothing written" if args.save or args.plot else ""
        print(f"symprop: the run diverged: {problem}{unwritten}; try a smaller --lr", file=sys.stderr)
        return 1
    if args.save is not None:
        save_arrays(history, args.save)
        print(f"wrote {args.save}")
    if args.plot is not None:
        plot_losses(history, args.plot)
        print(f"wrote {args.plot}")
    return 0


def _source(network: Network, seed: int, given=frozenset()) -> str:
    """Where the starting arrays come from, in words; random ones are named, with their shapes."""
    drawn = [name for name in network.shapes() if name not in network.values and name not in given
             and name not in network.masks]  # masks are drawn afresh at every step
    if not drawn:  # the parameters come from the spec, the data file, or both
        from_file = [name for name in network.parameters if name in given]
        if not from_file:
            return "the spec's [values]"
        return "the data file" if len(from_file) == len(network.parameters) else "the spec's [values] and the data file"
    shapes = {name: shape for name, shape in network.shapes(network.batch or 3).items()}
    listed = ", ".join(f"{name} {shapes[name]}" for name in drawn)
    rest = "the spec's [values] and " if network.values else ""
    note = ""
    if network.input in drawn:
        note = f" ({network.batch or 3} random samples, nothing to learn from: give --data FILE.npz)"
    return f"{rest}random values (seed {seed}) for {listed}{note}"


def _check_options(args, network: Network) -> tuple[str, ...]:
    """UsageError for a number out of range; the frozen parameter names."""
    if not (math.isfinite(args.lr) and args.lr > 0):
        raise UsageError(f"--lr {args.lr:g}: the learning rate must be a finite number > 0")
    if args.steps is not None and args.steps < 0:
        raise UsageError(f"--steps {args.steps}: must be >= 0")
    if args.steps is not None and args.epochs is not None:
        raise UsageError("give --steps or --epochs, not both")
    for option, value in (("--batch-size", args.batch_size), ("--epochs", args.epochs)):
        if value is not None and args.data is None:
            raise UsageError(f"{option} needs --data FILE.npz")
        if value is not None and value < (1 if option == "--batch-size" else 0):
            raise UsageError(f"{option} {value}: must be >= {1 if option == '--batch-size' else 0}")
    if args.every is not None and args.every < 1:
        raise UsageError(f"--every {args.every}: must be >= 1")
    if args.seed < 0:
        raise UsageError(f"--seed {args.seed}: must be >= 0")
    if args.shuffle_seed < 0:
        raise UsageError(f"--shuffle-seed {args.shuffle_seed}: must be >= 0")
    try:
        return check_freeze(network, args.freeze)
    except ValueError as error:
        raise UsageError(f"--freeze {args.freeze}: {error}") from None


def _check_outputs(args) -> None:
    """UsageError for a --plot or --save file that could not be written, before any step."""
    if args.plot is not None:
        if _image_format(args.plot) not in PLOT_FORMATS:
            raise UsageError(f"--plot {args.plot}: expected a .png file (or {', '.join(PLOT_FORMATS[1:])})")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise UsageError("--plot needs matplotlib: pip install matplotlib") from None
        require_writable(args.plot, "--plot")
    if args.save is not None:
        require_writable(args.save, "--save")


def divergence(history: History) -> str | None:
    """Why a run diverged (its final loss, an array or an output is inf or NaN), or None."""
    if not math.isfinite(history.loss):
        return f"the final loss is {history.loss}"
    overflowed = [name for name, array in history.arrays.items() if not np.isfinite(array).all()]
    if overflowed:
        return f"{', '.join(overflowed)} overflowed to inf or NaN"
    if not np.isfinite(history.outputs).all():
        return "the outputs hold inf or NaN"
    return None


def format_outputs(outputs) -> str:
    """The outputs with six decimals, as NumPy prints arrays."""
    return np.array2string(np.asarray(outputs), precision=6, floatmode="fixed", suppress_small=False)


class _ProgressBar:
    """A carriage-return bar on standard error, redrawn about 100 times in a run."""

    WIDTH = 30

    def __init__(self, total: int, stream=None):
        self.total = max(1, total)
        self.stream = sys.stderr if stream is None else stream
        self.stride = max(1, self.total // 100)
        self.shown = False

    def update(self, step: int) -> None:
        if step % self.stride and step != self.total:
            return
        done = int(self.WIDTH * step / self.total)
        self.stream.write(f"\r[{'#' * done}{'.' * (self.WIDTH - done)}] {step}/{self.total}")
        self.stream.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            self.stream.write("\r" + " " * (self.WIDTH + 2 * len(str(self.total)) + 4) + "\r")
            self.stream.flush()
            self.shown = False

"""The implementations timed beside the hand-written backprop: a row of PEERS each.

A peer is a column name, a builder and the module it needs. The builder takes the case's network
(a `symprop` Network, or a traced Program) and its values, and returns a function called like a
generated `gradients` (the arrays by keyword, a dict of gradients by name), or None where the
peer does not write that network (n/a in the table). Everything a builder compiles, jits or
lambdifies happens before the timing. A peer whose module is not installed is left out: the
`bench` extra installs them all (`pip install -e ".[bench]"`).
"""

from __future__ import annotations

import importlib.util

import numpy as np

import symprop
from symprop.codegen.files import compile_module
from symprop.codegen.numba_backend import Unsupported
from symprop.symbolic.spec import Network

SYMPY_ENTRIES = 64  # the element-level SymPy path only up to this many gradient entries


def peer_symprop(backend, validate):
    """A generated module, compiled in memory, with its default checks or VALIDATE = False."""
    def build(network, values):
        try:
            source = symprop.generate(network, backend=backend)
        except Unsupported:  # a network the compiled backend does not print yet: n/a
            return None
        module = compile_module(network, source)
        module.VALIDATE = validate
        return module.gradients
    return build


def _plain(network) -> bool:
    """A network the dense peers write (`_loss_with`): row layout, dense layers with the default
    names W1, b1, ..., one-hot or real targets, the mean loss; anything else is n/a for them."""
    if not isinstance(network, Network):
        return False
    names = [name for pair in _layers(network) for name in pair[:2]]
    return (network.layout == "row" and all(layer.kind == "dense" and not layer.shared_bias for layer in network.layers)
            and list(network.parameters) == names and network.input == "x" and network.target == "y"
            and not network.loss.labels and network.loss.kind in ("cross_entropy", "squared_error")
            and network.loss.reduction == "mean" and not network.loss.l2 and not network.wrt_input
            and (network.loss.kind == "cross_entropy") == (network.layers[-1].activation == "softmax")
            and network.loss.scale == (0.5 if network.loss.kind == "squared_error" else 1))


def _layers(network):
    return [(f"W{i + 1}", f"b{i + 1}", layer.activation) for i, layer in enumerate(network.layers)]


def _loss_with(ops, network):
    """The network's loss written with a peer's array operations `ops`."""
    layers = _layers(network)

    def loss(params, x, y):
        a = x
        for w, b, activation in layers:
            z = ops["dot"](a, params[w]) + params[b]
            a = z if activation in ("softmax", "identity") else ops[activation](z)
        if network.loss.kind == "cross_entropy":
            return -ops["sum"](y * ops["log_softmax"](a)) / x.shape[0]
        return 0.5 * ops["sum"]((a - y) ** 2) / (y.shape[0] * y.shape[1])  # the mean over every entry
    return loss


def _parameters(values):
    return [name for name in values if name not in ("x", "y")]


def peer_torch(network, values):
    """PyTorch autograd, tensors built once, fresh gradients every call."""
    if not _plain(network):
        return None
    import torch
    import torch.nn.functional as F
    torch.set_num_threads(1)
    ops = {"dot": torch.matmul, "sigmoid": torch.sigmoid, "relu": torch.relu, "tanh": torch.tanh, "sum": torch.sum,
           "log_softmax": lambda z: F.log_softmax(z, dim=1)}
    loss = _loss_with(ops, network)
    params = {n: torch.tensor(values[n], requires_grad=True) for n in _parameters(values)}
    x, y = torch.tensor(values["x"]), torch.tensor(values["y"])

    def gradients(**_):
        for p in params.values():
            p.grad = None
        loss(params, x, y).backward()
        return {n: p.grad for n, p in params.items()}
    return gradients


def peer_torch_reference(network, values):
    """PyTorch for the networks `peer_torch` does not write: `symprop.reference` (PyTorch's own
    layers), its tensors built from the NumPy arrays in every call, as a NumPy program calling it
    would."""
    if _plain(network) or not isinstance(network, Network):
        return None
    import torch
    from symprop.reference import torch_loss_and_gradients
    torch.set_num_threads(1)

    def gradients(**arrays):
        return torch_loss_and_gradients(network, arrays)[1]
    return gradients


def peer_jax(network, values):
    """JAX: `jit(grad(loss))`, float64."""
    if not _plain(network):
        return None
    import jax
    import jax.numpy as jnp
    jax.config.update("jax_enable_x64", True)
    ops = {"dot": jnp.dot, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "tanh": jnp.tanh, "sum": jnp.sum,
           "log_softmax": lambda z: jax.nn.log_softmax(z, axis=1)}
    grad = jax.jit(jax.grad(_loss_with(ops, network)))
    params = {n: jnp.asarray(values[n]) for n in _parameters(values)}
    x, y = jnp.asarray(values["x"]), jnp.asarray(values["y"])

    def gradients(**_):
        return jax.block_until_ready(grad(params, x, y))
    return gradients


def peer_pytensor(network, values):
    """PyTensor: `pytensor.grad` compiled in its Numba mode, inputs trusted."""
    if not _plain(network):
        return None
    import pytensor
    import pytensor.tensor as pt
    from pytensor.tensor.special import log_softmax
    ops = {"dot": pt.dot, "sigmoid": pt.sigmoid, "relu": lambda z: pt.maximum(z, 0), "tanh": pt.tanh, "sum": pt.sum,
           "log_softmax": lambda z: log_softmax(z, axis=1)}
    names = _parameters(values)
    symbols = {n: pt.tensor(n, shape=values[n].shape, dtype="float64") for n in names}
    x, y = pt.matrix("x", dtype="float64"), pt.matrix("y", dtype="float64")
    cost = _loss_with(ops, network)(symbols, x, y)
    function = pytensor.function([x, y, *symbols.values()], pytensor.grad(cost, list(symbols.values())),
                                 mode="NUMBA", trust_input=True)
    arguments = [values["x"], values["y"], *(values[n] for n in names)]

    def gradients(**_):
        return dict(zip(names, function(*arguments)))
    return gradients


def peer_autograd(network, values):
    """autograd's `grad`, traced anew in every call."""
    if not _plain(network):
        return None
    import autograd
    import autograd.numpy as anp

    def log_softmax(z):
        shifted = z - anp.max(z, axis=1, keepdims=True)
        return shifted - anp.log(anp.sum(anp.exp(shifted), axis=1, keepdims=True))
    ops = {"dot": anp.dot, "sigmoid": lambda z: 1 / (1 + anp.exp(-z)), "relu": lambda z: anp.maximum(z, 0),
           "tanh": anp.tanh, "sum": anp.sum, "log_softmax": log_softmax}
    grad = autograd.grad(_loss_with(ops, network))
    params = {n: values[n] for n in _parameters(values)}

    def gradients(**_):
        return grad(params, values["x"], values["y"])
    return gradients


def peer_sympy(network, values):
    """SymPy element by element: the loss over one scalar symbol per entry (`symprop`'s exact
    oracle), `lambdify(..., cse=True)` of every gradient entry for Python's `math`; per call the
    arrays are flattened to floats and the entries cut back into arrays. Small networks only."""
    if (not isinstance(network, Network) or network.loss.labels or network.tokens
            or sum(np.size(values[n]) for n in network.differentiated) > SYMPY_ENTRIES):
        return None
    import sympy
    from symprop.symbolic import elements
    batch = np.shape(values[network.input])[0] if network.layout == "row" else 1
    expanded = elements.expand(network, batch=batch)
    entries = [g for name in network.differentiated for g in expanded.gradient(name).flat]
    order = list(expanded.symbols)
    symbols = [s for name in order for s in np.asarray(expanded.symbols[name]).flat]
    function = sympy.lambdify(symbols, entries, modules="math", cse=True)
    cuts, start = [], 0
    for name in network.differentiated:
        shape = np.shape(values[name])
        cuts.append((name, start, start + int(np.prod(shape)), shape))
        start = cuts[-1][2]

    def gradients(**arrays):
        flat = function(*np.concatenate([np.ravel(arrays[name]) for name in order]).tolist())
        return {name: np.array(flat[lo:hi], dtype=np.float64).reshape(shape) for name, lo, hi, shape in cuts}
    return gradients


PEERS = [  # column, builder, the module (or modules) it needs (None: always there)
    ("symprop numba", peer_symprop("numba", True), "numba"),
    ("symprop numba noval", peer_symprop("numba", False), "numba"),
    ("symprop numpy", peer_symprop("numpy", True), None),
    ("symprop numpy noval", peer_symprop("numpy", False), None),
    ("PyTensor (Numba)", peer_pytensor, ("pytensor", "numba")),
    ("JAX jit", peer_jax, "jax"),
    ("PyTorch", peer_torch, "torch"),
    ("PyTorch (symprop.reference)", peer_torch_reference, "torch"),
    ("autograd", peer_autograd, "autograd"),
    ("SymPy elements", peer_sympy, None),
]


def installed(modules) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in (() if modules is None else
                                                                  (modules,) if isinstance(modules, str) else modules))

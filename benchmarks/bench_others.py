"""The other ways of getting the same gradients: PyTorch autograd, and SymPy element by element.

Both are built once per network (outside the timing) and then called like `gradients`, with
the arrays by keyword, returning a dict of gradients by name.
"""

from __future__ import annotations

import time

import numpy as np
import sympy

from symprop.symbolic import elements

# ------------------------------------------------------------------------------------------------
# PyTorch: a lean autograd path (not symprop.reference, which rebuilds the tensors every call)


def torch_or_none():
    """The torch module set to one intra-op thread (matching single-threaded OpenBLAS), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


def make_torch_gradients(torch, network, arrays):
    """fn(**ignored) -> {name: grad tensor}: forward + backward on float64 tensors built once.

    Per call: every leaf's .grad is reset to None (fresh gradients, like
    `optimizer.zero_grad(set_to_none=True)`), the forward pass runs with PyTorch's own ops
    (`torch.addmm` for a row-layout layer with a bias vector, as `nn.Linear` does;
    `F.cross_entropy` on the logits with probability targets; `F.mse_loss`), then `backward()`.
    The gradients are returned as tensors (`.numpy()` would be a zero-copy view).
    """
    F = torch.nn.functional
    tensors = {name: torch.tensor(np.asarray(value, dtype=np.float64), dtype=torch.float64,
                                  requires_grad=name in network.differentiated)
               for name, value in arrays.items()}
    leaves = [tensors[name] for name in network.differentiated]
    act = {"identity": None, "relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}
    row = network.layout == "row"
    layers = [(tensors[l.weight], tensors[l.bias] if l.bias else None, l.shared_bias, l.activation)
              for l in network.layers]
    x, y, spec = tensors[network.input], tensors[network.target], network.loss
    assert not spec.labels and spec.l2 == 0.0
    ce = spec.kind == "cross_entropy"
    if ce and not row:
        y = y.unsqueeze(0)
    names = network.differentiated

    def torch_gradients(**_ignored):
        for t in leaves:
            t.grad = None
        a = x
        for W, b, shared, activation in layers:
            if b is None:
                z = a @ W if row else W @ a
            elif row and not shared:
                z = torch.addmm(b, a, W)
            else:
                z = (a @ W if row else W @ a) + b
            if activation == "softmax":       # the loss takes the logits
                a = z
            elif act[activation] is not None:
                a = act[activation](z)
            else:
                a = z
        if ce:
            loss = F.cross_entropy(a if row else a.unsqueeze(0), y, reduction=spec.reduction)
        elif spec.kind == "squared_error":
            loss = F.mse_loss(a, y, reduction=spec.reduction)
        else:
            raise NotImplementedError(spec.kind)
        if spec.scale != 1.0:
            loss = loss * spec.scale
        loss.backward()
        return {name: t.grad for name, t in zip(names, leaves)}

    return torch_gradients


# ------------------------------------------------------------------------------------------------
# SymPy, element by element: the loss over one scalar symbol per entry, sympy.diff per entry,
# lambdify(..., cse=True) of all gradient entries at once


def sympy_entries(network, arrays) -> int:
    """How many gradient entries the element-level path would write out."""
    return sum(int(np.size(arrays[name])) for name in network.differentiated)


def make_sympy_gradients(network, arrays):
    """(fn, setup): fn(**arrays) -> gradients by name; setup holds the seconds spent building it.

    lambdify prints for Python's `math` module (scalar code: 10-20x faster per call than the
    NumPy printer on scalars); if that fails, for NumPy. Per call, the arrays are flattened to
    one list of floats, the lambdified function is called, and its flat list of entries is cut
    back into arrays of the right shapes: that conversion is part of the cost of this path.
    """
    row = network.layout == "row"
    n = np.shape(arrays[network.input])[0] if row else 1
    t0 = time.perf_counter()
    expanded = elements.expand(network, batch=n)
    t1 = time.perf_counter()
    exprs = [g for name in network.differentiated for g in expanded.gradient(name).flat]
    t2 = time.perf_counter()
    order = list(expanded.symbols)
    symbols = [s for name in order for s in np.asarray(expanded.symbols[name]).flat]
    try:
        modules = "math"
        fn = sympy.lambdify(symbols, exprs, modules=modules, cse=True)
    except Exception:                     # a function math has no name for
        modules = "numpy"
        fn = sympy.lambdify(symbols, exprs, modules=modules, cse=True)
    t3 = time.perf_counter()
    cuts, pos = [], 0
    for name in network.differentiated:
        shape = np.shape(arrays[name])
        size = int(np.prod(shape))
        cuts.append((name, pos, pos + size, shape))
        pos += size

    def sympy_gradients(**arrays):
        flat = fn(*np.concatenate([np.ravel(arrays[name]) for name in order]).tolist())
        return {name: np.array(flat[lo:hi], dtype=np.float64).reshape(shape)
                for name, lo, hi, shape in cuts}

    setup = {"expand_s": t1 - t0, "diff_s": t2 - t1, "lambdify_s": t3 - t2,
             "entries": len(exprs), "modules": modules}
    return sympy_gradients, setup

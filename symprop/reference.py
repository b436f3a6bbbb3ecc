"""The same network in PyTorch, float64 autograd: an independent reference for the checks.

The layers are PyTorch's own functions (`torch.relu`, `F.leaky_relu`, `F.softplus`,
`F.batch_norm` in training mode, `F.layer_norm`, `F.conv2d`, `F.max_pool2d`, `F.avg_pool2d`, ...),
each kind's in its `torch` method (`symbolic.kinds`), and the losses its own (`F.cross_entropy` on
the logits, with class labels or probability targets, `F.binary_cross_entropy_with_logits`,
`F.multi_margin_loss`), so nothing here shares code or formulas with the derivation.
"""

from __future__ import annotations

import numpy as np

from .symbolic.spec import Network


class TorchMissing(ImportError):
    """PyTorch is not installed."""


def _torch():
    try:
        import torch
    except ImportError:
        raise TorchMissing("PyTorch is not installed: pip install torch") from None
    return torch


def torch_loss_and_gradients(network: Network, values: dict, dtype: str = "float64") -> tuple[float, dict]:
    """(loss, gradients by name) of `network` at `values`, by PyTorch autograd in `dtype`."""
    torch = _torch()
    dtype = getattr(torch, dtype)
    F = torch.nn.functional
    tensors = {}
    for name, value in values.items():
        array = np.asarray(value)
        if array.dtype.kind in "iu" and name not in network.masks:  # class labels, tokens
            tensors[name] = torch.tensor(array, dtype=torch.long)
        else:
            tensors[name] = torch.tensor(array, dtype=dtype,
                                         requires_grad=name in network.differentiated)
    t = _Layers(torch, tensors, network.layout == "row", tensors[network.input])
    z = None  # the last pre-activation: the logits of a softmax or sigmoid layer
    for layer in network.layers:
        a, pre = layer.definition.torch(t, layer, t.outputs[-1])
        t.outputs.append(a)
        z = pre if pre is not None else z
    a = t.outputs[-1]
    row = t.row
    y = tensors[network.target]
    spec = network.loss
    if network.layers[-1].sequence:  # over every step: the steps as samples, summed, then / N for a mean
        data = _over_steps(torch, spec, a, z, y, tensors.get(spec.mask))
    elif spec.kind == "squared_error":
        data = F.mse_loss(a, y, reduction=spec.reduction)
    elif spec.kind == "binary_cross_entropy":  # on the logits z of the sigmoid layer: stable
        data = F.binary_cross_entropy_with_logits(z, y, reduction=spec.reduction)
    elif spec.kind == "multiclass_hinge":  # PyTorch divides each sample's sum by the class count K
        scores, labels = (a, y) if row else (a.unsqueeze(0), y.reshape(1) if spec.labels else y.unsqueeze(0))
        if not spec.labels:
            labels = labels.argmax(dim=-1)
        K = scores.shape[-1]
        data = K * F.multi_margin_loss(scores, labels, margin=spec.margin, reduction=spec.reduction)
    else:  # cross_entropy, on the logits z of the softmax layer
        logits, target = (z, y) if row else (z.unsqueeze(0), y.reshape(1) if spec.labels else y.unsqueeze(0))
        data = F.cross_entropy(logits, target, reduction=spec.reduction)
    loss = spec.scale * data
    if spec.l2:
        loss = loss + spec.l2 * sum((tensors[name] ** 2).sum() for name in network.weights)
    loss.backward()
    grads = {name: tensors[name].grad.numpy() for name in network.differentiated}
    return float(loss.detach()), grads


def _over_steps(torch, spec, a, z, y, mask):
    """A loss over a sequence output (N, T, K), PyTorch's per-entry losses weighted by `mask` (N, T):
    cross-entropy summed over the steps and divided by N (cs231n's temporal softmax loss), the others
    averaged over every entry."""
    F = torch.nn.functional
    N, T, K = a.shape
    weight = torch.ones(N, T, 1, dtype=a.dtype) if mask is None else mask.reshape(N, T, 1)
    if spec.kind == "cross_entropy":
        target = y.reshape(-1) if spec.labels else y.reshape(-1, K)
        each = F.cross_entropy(z.reshape(-1, K), target, reduction="none").reshape(N, T, 1)
        count = N
    elif spec.kind == "binary_cross_entropy":
        each = F.binary_cross_entropy_with_logits(z, y, reduction="none")
        count = N * T * K
    else:
        each = F.mse_loss(a, y, reduction="none")
        count = N * T * K
    total = (weight * each).sum()
    return total / count if spec.reduction == "mean" else total


class _Layers:
    """What a kind's `torch` reads: PyTorch, its `F`, the tensors by name, the layout and the
    outputs so far (`outputs[0]` the input, for a residual connection)."""

    def __init__(self, torch, tensors: dict, row: bool, x):
        self.torch, self.F, self.tensors, self.row = torch, torch.nn.functional, tensors, row
        self.outputs = [x]

    def optional(self, name):
        return None if name is None else self.tensors[name]

    def activate(self, z, layer):
        """f(z) by PyTorch's own function, plus the output k layers below for a residual connection."""
        torch, F = self.torch, self.F
        activation = {
            "identity": lambda: z,
            "sigmoid": lambda: torch.sigmoid(z),
            "tanh": lambda: torch.tanh(z),
            "relu": lambda: torch.relu(z),
            "leaky_relu": lambda: F.leaky_relu(z, layer.negative_slope),
            "softplus": lambda: F.softplus(z),
            "softmax": lambda: torch.softmax(z, dim=-1),
        }[layer.activation]()
        if layer.residual:
            activation = activation + self.outputs[len(self.outputs) - layer.residual]
        return activation

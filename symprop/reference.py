"""The same network in PyTorch, float64 autograd: an independent reference for the checks.

The layers are PyTorch's own functions (`torch.relu`, `F.leaky_relu`, `F.softplus`, ...) and the
losses its own (`F.cross_entropy` on the logits, with class labels or probability targets,
`F.binary_cross_entropy_with_logits`), so nothing here shares code or formulas with the derivation.
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
        if array.dtype.kind in "iu":
            tensors[name] = torch.tensor(array, dtype=torch.long)
        else:
            tensors[name] = torch.tensor(array, dtype=dtype,
                                         requires_grad=name in network.differentiated)
    activations = {
        "identity": lambda z, layer: z,
        "sigmoid": lambda z, layer: torch.sigmoid(z),
        "tanh": lambda z, layer: torch.tanh(z),
        "relu": lambda z, layer: torch.relu(z),
        "leaky_relu": lambda z, layer: F.leaky_relu(z, layer.negative_slope),
        "softplus": lambda z, layer: F.softplus(z),
        "softmax": lambda z, layer: torch.softmax(z, dim=-1),
    }
    row = network.layout == "row"
    a = tensors[network.input]
    for layer in network.layers:
        W = tensors[layer.weight]
        z = a @ W if row else W @ a
        if layer.bias is not None:
            z = z + tensors[layer.bias]
        a = activations[layer.activation](z, layer)
    y = tensors[network.target]
    spec = network.loss
    if spec.kind == "squared_error":
        data = F.mse_loss(a, y, reduction=spec.reduction)
    elif spec.kind == "binary_cross_entropy":  # on the logits z of the sigmoid layer: stable
        data = F.binary_cross_entropy_with_logits(z, y, reduction=spec.reduction)
    else:  # cross_entropy, on the logits z of the softmax layer
        logits, target = (z, y) if row else (z.unsqueeze(0), y.reshape(1) if spec.labels else y.unsqueeze(0))
        data = F.cross_entropy(logits, target, reduction=spec.reduction)
    loss = spec.scale * data
    if spec.l2:
        loss = loss + spec.l2 * sum((tensors[layer.weight] ** 2).sum() for layer in network.layers)
    loss.backward()
    grads = {name: tensors[name].grad.numpy() for name in network.differentiated}
    return float(loss.detach()), grads

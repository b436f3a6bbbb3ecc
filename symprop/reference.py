"""The same network in PyTorch, float64 autograd: an independent reference for the checks.

The layers are PyTorch's own functions (`torch.relu`, `F.leaky_relu`, `F.softplus`,
`F.batch_norm` in training mode, `F.layer_norm`, `F.conv2d`, `F.max_pool2d`, `F.avg_pool2d`, ...) and the losses its own (`F.cross_entropy` on
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
        if array.dtype.kind in "iu" and name not in network.masks:  # class labels
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
    outputs = [tensors[network.input]]  # a_0 (the input), a_1, ...

    def optional(name):
        return None if name is None else tensors[name]

    for l, layer in enumerate(network.layers, 1):
        a = outputs[-1]
        if layer.kind == "dropout":
            outputs.append(a * tensors[layer.mask] / (1 - layer.p))
            continue
        if layer.kind in ("maxpool2d", "avgpool2d", "flatten"):
            pool = {"maxpool2d": F.max_pool2d, "avgpool2d": F.avg_pool2d}.get(layer.kind)
            outputs.append(torch.flatten(a, 1) if pool is None else pool(a, layer.kernel, layer.stride))
            continue
        if layer.kind == "dense":
            W = tensors[layer.weight]
            if layer.transpose_weight:
                W = W.T
            z = a @ W if row else W @ a
            if layer.bias is not None:
                z = z + tensors[layer.bias]
        elif layer.kind == "conv2d":
            z = F.conv2d(a, tensors[layer.weight], optional(layer.bias), stride=layer.stride, padding=layer.padding)
        elif layer.kind == "batchnorm":  # training mode: the batch's mean and biased variance (per channel: BatchNorm2d)
            gamma, beta = optional(layer.scale), optional(layer.shift)
            if a.shape[0] > 1:
                z = F.batch_norm(a, None, None, weight=gamma, bias=beta, training=True, eps=layer.eps)
            else:  # F.batch_norm refuses one sample; its op gives xhat = 0 (a zero variance)
                z = torch.batch_norm(a, gamma, beta, None, None, True, 0.0, layer.eps, False)
        elif layer.kind == "layernorm":
            z = F.layer_norm(a, tuple(a.shape[1:]) if row else (a.shape[-1],), optional(layer.scale),
                             optional(layer.shift), layer.eps)
        else:
            raise ValueError(f"the PyTorch reference has no layer kind '{layer.kind}'")
        a = activations[layer.activation](z, layer)
        if layer.residual:
            a = a + outputs[l - layer.residual]
        outputs.append(a)
    a = outputs[-1]
    y = tensors[network.target]
    spec = network.loss
    if spec.kind == "squared_error":
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

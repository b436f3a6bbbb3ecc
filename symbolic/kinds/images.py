"""The kinds over images (N, C, H, W): `conv2d`, `maxpool2d`, `avgpool2d` and `flatten`."""

from __future__ import annotations

import math

from .. import arrays
from ..arrays import PerChannel, pair
from .base import Kind, Layer, Parameter, pair_words


class Conv2d(Kind):
    name = "conv2d"
    keys = ("filters", "kernel", "stride", "padding", "weight", "bias", "activation", "negative_slope")
    takes = "images"
    activated = True
    doc = ("`filters`, `kernel` (int or `[kh, kw]`), `stride` (1), `padding` (0; int or pair), `weight` "
           "(`W<l>`), `bias` (`b<l>`), `activation` (identity)",
           "a cross-correlation with zero padding: `W` is `(filters, C, kh, kw)`, `b` is `(filters,)`, the "
           "output `(N, filters, H', W')` with `H' = (H + 2 padding - kh) // stride + 1`",
           "`F.conv2d`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        activation, slope = r.activation(table, prefix, last)
        if activation == "softmax":
            r.fail(prefix + "activation", "softmax is over the features of a row, not an image")
        filters = r.size(table, "filters", prefix)
        kernel = r.pair(table, "kernel", prefix)
        stride = r.pair(table, "stride", prefix, (1, 1))
        padding = r.pair(table, "padding", prefix, (0, 0), least=0)
        channels, height, width = widths[-1]
        padded = (height + 2 * padding[0], width + 2 * padding[1])
        if kernel[0] > padded[0] or kernel[1] > padded[1]:
            r.fail(prefix + "kernel", f"the kernel {kernel[0]}x{kernel[1]} is larger than its input "
                   f"{padded[0]}x{padded[1]} (H x W {height}x{width} with padding {padding[0]}, {padding[1]})")
        shape = (filters, *((padded[k] - kernel[k]) // stride[k] + 1 for k in (0, 1)))
        return Layer(kind="conv2d", units=math.prod(shape), inputs=math.prod(widths[-1]), shape=shape,
                     input_shape=widths[-1], activation=activation, negative_slope=slope, filters=filters,
                     kernel=kernel, stride=stride, padding=padding,
                     weight=r.get(table, "weight", str, f"W{l}", prefix), bias=r.name(table, "bias", f"b{l}", prefix))

    def arrays(self, layer, layout):
        out = [Parameter(layer.weight, (layer.filters, layer.input_shape[0], *layer.kernel), "weight", "weight")]
        if layer.bias is not None:
            out.append(Parameter(layer.bias, (layer.filters,), "bias", "bias"))
        return tuple(out)

    def forward(self, f, layer, l, a):
        z = arrays.Conv2d(a, f.arrays[layer.weight], pair(layer.kernel), pair(layer.stride), pair(layer.padding))
        if layer.bias is not None:
            z = z + PerChannel(f.arrays[layer.bias])
        words = (f"convolution: {layer.filters} filters {layer.kernel[0]}x{layer.kernel[1]}, "
                 f"stride {pair_words(layer.stride)}, padding {pair_words(layer.padding)}")
        z = f.step(f"z{l}", z, words + (", plus a bias per filter" if layer.bias is not None else ""),
                   l, "pre-activation")
        return f.activate(layer, l, z)

    def torch(self, t, layer, a):
        z = t.F.conv2d(a, t.tensors[layer.weight], t.optional(layer.bias), stride=layer.stride, padding=layer.padding)
        return t.activate(z, layer), z

    def summary(self, layer):
        words = f"conv2d {layer.filters} {'x'.join(map(str, layer.kernel))}"
        return words + (f" {layer.activation}" if layer.activation != "identity" else "")

    def fan_in(self, layer):
        return layer.input_shape[0] * layer.kernel[0] * layer.kernel[1]

    def scratch(self, layer):  # its input's windows copied into columns: C kh kw entries per output pixel
        return layer.input_shape[0] * math.prod(layer.kernel) * math.prod(layer.shape[1:])


class _Pool(Kind):
    keys = ("size", "stride")
    takes = "images"
    operation = None

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        size = r.pair(table, "size", prefix)
        stride = r.pair(table, "stride", prefix, size)
        channels, height, width = widths[-1]
        if size[0] > height or size[1] > width:
            r.fail(prefix + "size", f"the window {size[0]}x{size[1]} is larger than its input {height}x{width}")
        shape = (channels, (height - size[0]) // stride[0] + 1, (width - size[1]) // stride[1] + 1)
        return Layer(kind=self.name, units=math.prod(shape), inputs=math.prod(widths[-1]), shape=shape,
                     input_shape=widths[-1], kernel=size, stride=stride)

    def forward(self, f, layer, l, a):
        return f.step(f"a{l}", self.operation(a, pair(layer.kernel), pair(layer.stride)),
                      f"{self.words}: the {self.of} of each {layer.kernel[0]}x{layer.kernel[1]} window, "
                      f"stride {pair_words(layer.stride)}", l, "activation")

    def torch(self, t, layer, a):
        return getattr(t.F, self.name.replace("pool", "_pool"))(a, layer.kernel, layer.stride), None

    def summary(self, layer):
        return f"{self.name} {'x'.join(map(str, layer.kernel))}"


class MaxPool2d(_Pool):
    name = "maxpool2d"
    operation, words, of = arrays.MaxPool2d, "max pooling", "maximum"
    doc = ("`size` (int or pair), `stride` (= `size`)",
           "the maximum of each window, no padding; its gradient goes to the first maximum of each window in "
           "row-major order",
           "`F.max_pool2d`")


class AvgPool2d(_Pool):
    name = "avgpool2d"
    operation, words, of = arrays.AvgPool2d, "average pooling", "mean"
    doc = ("`size`, `stride` (= `size`)", "the mean of each window", "`F.avg_pool2d`")


class Flatten(Kind):
    name = "flatten"
    takes = "images"
    doc = ("none", "`(N, C, H, W) -> (N, C*H*W)`, C order", "`torch.flatten(a, 1)`")

    def read(self, r, table, prefix, l, last, widths) -> Layer:
        return Layer(kind="flatten", units=math.prod(widths[-1]), inputs=math.prod(widths[-1]),
                     input_shape=widths[-1])

    def forward(self, f, layer, l, a):
        return f.step(f"a{l}", arrays.Flatten(a), "flatten: each sample's C x H x W values as one row, in C order",
                      l, "activation")

    def torch(self, t, layer, a):
        return t.torch.flatten(a, 1), None

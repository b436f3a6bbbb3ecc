"""The layer kinds of the spec, each one class (`symbolic.kinds.base.Kind`), by name in `KINDS`.

Adding a kind is one class in a module here and one entry below: its keys and their rules, its
arrays and their shapes, its forward pass in array operations, its PyTorch equivalent and its row
of the README's table. The spec reader (`symbolic.spec`), the program's front end
(`symbolic.layers`), the PyTorch reference (`symprop.reference`) and the README read them.
"""

from .attention import Attention
from .base import Kind, Layer, Parameter
from .dense import Dense
from .dropout import Dropout
from .embedding import Embedding
from .images import AvgPool2d, Conv2d, Flatten, MaxPool2d
from .normalization import BatchNorm, LayerNorm
from .recurrent import LSTM, RNN

KINDS: dict[str, Kind] = {kind.name: kind for kind in (
    Dense(), BatchNorm(), LayerNorm(), Dropout(), Conv2d(), MaxPool2d(), AvgPool2d(), Flatten(), Embedding(), RNN(), LSTM(), Attention())}


def table() -> str:
    """The README's table of layer kinds."""
    head = "| kind | keys (defaults) | computes (row layout) | PyTorch equivalent |\n|---|---|---|---|\n"
    return head + "\n".join(kind.row() for kind in KINDS.values())


__all__ = ["KINDS", "Kind", "Layer", "Parameter", "table"]

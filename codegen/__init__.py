"""symprop's code generator (`symprop.codegen`): NumPy gradient modules from matrix-level derivations.

`generate(network) -> str`, the module source that `symprop generate` writes.
"""

from .module import generate

__all__ = ["generate"]

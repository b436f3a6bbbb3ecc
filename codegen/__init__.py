"""symprop's code generator: NumPy gradient modules from matrix-level derivations.

Public API: `generate(network) -> str`, the module source that `symprop generate` writes.
"""

from .module import generate

__all__ = ["generate"]

"""symprop's symbolic side: network specs, the rule table and the derivations.

Public API: `load`, `loads`, `presets`, `derive`, `numerical_gradients`, `Network`, `SpecError`,
`Derivation`.
"""

from .derive import Derivation, derive
from .numerical import numerical_gradients
from .spec import Network, SpecError, load, loads, presets

__all__ = ["Derivation", "Network", "SpecError", "derive", "load", "loads", "numerical_gradients", "presets"]

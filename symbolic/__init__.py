"""symprop's symbolic side: network specs, the rule table and the derivations (`symprop.symbolic`).

`load`, `loads`, `presets`, `derive`, `Network`, `SpecError`, `Derivation`.
"""

from .derive import Derivation, derive
from .spec import Network, SpecError, load, loads, presets

__all__ = ["Derivation", "Network", "SpecError", "derive", "load", "loads", "presets"]

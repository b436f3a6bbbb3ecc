"""symprop's symbolic side: network specs, the rule table and the derivations (`symprop.symbolic`).

`load`, `loads`, `presets`, `derive`, `Network`, `SpecError`, `Derivation`; `trace`, `Program`,
`TraceError` (a user's own NumPy function as a program).
"""

from .derive import Derivation, derive
from .program import Program
from .spec import Network, SpecError, load, loads, presets
from .trace import TraceError, trace

__all__ = ["Derivation", "Network", "Program", "SpecError", "TraceError", "derive", "load", "loads", "presets",
           "trace"]

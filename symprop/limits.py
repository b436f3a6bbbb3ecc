"""Refusing work the machine cannot hold, before anything is allocated (contract 5a).

`require_memory` estimates what a check or a training run of a network holds at once (every
array of the spec, and every layer's outputs, pre-activations and gradients for one batch, a few
times over for the copies the comparisons make) and refuses, in one line, when that exceeds the
memory the system reports as available.
"""

from __future__ import annotations

import math
import os

from .errors import UsageError

COPIES = 6  # values, their float64 copies, generated and compared gradients, finite-difference work


def available_memory() -> int | None:
    """Bytes the system can give without swapping (MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_needed(network, batch: int) -> int:
    """Bytes a check or training step of `network` holds at once, about (float64)."""
    n = network.batch or batch
    arrays = sum(math.prod(int(d) for d in shape) for shape in network.shapes(n).values())
    per_sample = sum(math.prod(layer.shape) for layer in network.layers)
    # a convolution copies its input's windows into columns: C kh kw entries per output pixel
    per_sample += sum(layer.definition.scratch(layer) for layer in network.layers)
    steps = 3 * per_sample * (n if network.layout == "row" else 1)  # z, a and the gradient of each layer
    return 8 * COPIES * (arrays + steps)


def require_memory(network, batch: int, what: str) -> None:
    """UsageError when `what` (a command) would need more memory than is available."""
    needed, available = memory_needed(network, batch), available_memory()
    if available is not None and needed > available:
        raise UsageError(f"{network.name}: {what} would need about {needed / 2**30:.1f} GiB, more than the "
                         f"{available / 2**30:.1f} GiB of memory available")

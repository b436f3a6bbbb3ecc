"""`python -m symprop`: the command line."""

import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while starting: exit 130, one line
    print("symprop: interrupted", file=sys.stderr)
    sys.exit(130)

sys.exit(main())

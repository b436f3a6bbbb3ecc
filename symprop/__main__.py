"""`python -m symprop`: the command line."""

import os
import signal
import sys

try:
    from .cli import main
except KeyboardInterrupt:  # Ctrl-C while starting: exit 130, one line (os._exit: see cli.interrupted)
    print("symprop: interrupted", file=sys.stderr)
    sys.stderr.flush()
    os._exit(130)

code = main()
signal.signal(signal.SIGINT, signal.SIG_IGN)  # done: a Ctrl-C while the interpreter shuts down changes nothing
sys.exit(code)

"""What every test process needs, unit and integration alike."""

import signal

# A test run started in the background by a non-interactive shell (``make test &``, some CI runners)
# inherits SIGINT as ignored, and so would every runner it starts: the tests that interrupt a runner
# with Ctrl-C would then wait for a signal nobody receives. Python's own handler puts it back; the
# processes the tests start then get SIGINT's default at exec, and Python's KeyboardInterrupt.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

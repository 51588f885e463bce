"""Exception types shared across the package that the ``cinemri`` command reports specially.

Kept free of heavy imports so the command line can catch them without loading torch.
"""

from __future__ import annotations


class RunStopped(RuntimeError):
    """A long run stopped for a reason the user must act on (e.g. training diverged).

    The message is one line that says what happened and what was kept; ``cinemri`` prints
    it as ``cinemri: error: <message>`` and exits with status 1, without a traceback.
    """

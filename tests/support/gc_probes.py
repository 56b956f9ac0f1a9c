"""Source shared by the collector probes that the task start and exit tests run as programs."""

import textwrap

#: ``Noted(name)`` is a cycle that only the collector frees; it prints ``freed <name>`` then
NOTED = textwrap.dedent(
    """
    import gc, sys

    class Noted:
        def __init__(self, name):
            self.name, self.me = name, self  # a cycle: only the collector frees it
        def __del__(self):
            sys.stdout.write(f"freed {self.name}\\n")
    """
)

"""``python -m tests.support.slow_serve SECONDS serve ...``: ``slipway serve`` with a slow model.

The guard's end-to-end test and benchmark need a version that answers correctly but slowly.
A model whose own ``predict`` sleeps cannot be packaged (skops refuses to load a type outside
the trusted list: a package must never run code on load), so the slowness is put where a slow
model would spend its time: this launcher wraps :meth:`LoadedModel.predict` with a sleep of
SECONDS, then runs the real CLI. Everything else (loading and verifying the package, the
routes, the metrics the guard reads) is the real server; the sleep blocks the event loop as a
CPU-bound prediction would.
"""

from __future__ import annotations

import sys
import time

from slipway.cli import main
from slipway.serving import model as serving_model


def slow_down(seconds: float) -> None:
    """Make every plain-model prediction of this process take ``seconds`` longer."""
    predict = serving_model.LoadedModel.predict

    def slow_predict(self, rows):
        time.sleep(seconds)
        return predict(self, rows)

    serving_model.LoadedModel.predict = slow_predict


if __name__ == "__main__":
    if len(sys.argv) < 3:
        raise SystemExit("usage: python -m tests.support.slow_serve SECONDS serve [OPTIONS]")
    slow_down(float(sys.argv.pop(1)))
    main()

"""``python -m pipelines [--check] [--output PATH]``: compile ``slipway-training``, or check it.

Exit codes: 0 written or current, 1 the committed YAML is out of date, 2 bad configuration.
``slipway compile`` and ``slipway run`` call this as a program, so the library never imports
the pipeline definition.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from slipway.orchestration.task_start import pause_gc_in_imports

if __name__ == "__main__":  # the program: `slipway run` waits for the check, mostly imports
    pause_gc_in_imports()  # of kfp and the pipeline, made without the collector (task_start)
    from slipway.orchestration.local_run import import_kfp_sdk

    import_kfp_sdk()  # compiling needs no kfp.Client (and its kubernetes client) imported

from pipelines.compiled import COMPILED, compile_pipeline, compiled_is_current
from slipway.config import load_settings
from slipway.errors import SlipwayError


def main(argv: list[str] | None = None) -> int:
    """Compile (or with ``--check`` verify) the committed pipeline YAML; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m pipelines", description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the YAML is out of date")
    parser.add_argument("--output", type=Path, default=None, help=f"default {COMPILED}")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if args.check:
            if not compiled_is_current(settings):
                print(
                    f"{COMPILED} is missing or out of date with the code or params.yaml; run "
                    "`make compile-pipeline` (and commit the YAML)",
                    file=sys.stderr,
                )
                return 1
            print("compiled pipeline is up to date")
            return 0
        path = compile_pipeline(settings, args.output)
    except SlipwayError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"compiled slipway-training -> {path} (image {settings.component_image})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What ``slipway run`` and its compile check import before the first task, in a new interpreter.

Before the first task ``slipway run`` validates the request and imports kfp's local runner while
``python -m pipelines --check`` imports kfp, the pipeline definition and compiles it; the run
waits for both. Neither needs pandas nor kfp's API client (and its kubernetes client): each
was 1-1.7 s of that wait on a new bytecode cache (docs/pipeline.md, "Where a local run's time
goes").
"""

import json
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[3]


def _modules_after(code: str) -> dict:
    """Run ``code`` in a new interpreter; it prints a JSON object as its last line."""
    env = {k: v for k, v in os.environ.items() if k != "_KFP_RUNTIME"}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_runner_is_imported_without_kfps_api_client():
    found = _modules_after(
        "import json, os, sys\n"
        "from slipway.orchestration.local_run import preload_runner\n"
        "preload_runner()\n"
        "import kfp.local, kfp.compiler\n"
        "from kfp import dsl\n"
        "print(json.dumps({\n"
        "    'loaded': sorted(m for m in ('kfp.client', 'kubernetes', 'kfp_server_api')"
        " if m in sys.modules),\n"
        "    'env': os.environ.get('_KFP_RUNTIME'),\n"
        "    'dsl': [hasattr(dsl, n) for n in ('component', 'pipeline', 'ParallelFor', 'If')],\n"
        "    'runner': hasattr(kfp.local, 'SubprocessRunner'),\n"
        "}))\n"
    )
    assert found == {"loaded": [], "env": None, "dsl": [True] * 4, "runner": True}


def test_the_client_still_imports_for_whoever_needs_it():
    found = _modules_after(
        "import json\n"
        "from slipway.orchestration.local_run import import_kfp_sdk\n"
        "import_kfp_sdk()\n"
        "from kfp.client import Client\n"
        "print(json.dumps({'client': Client.__name__}))\n"
    )
    assert found == {"client": "Client"}


def test_a_kfp_imported_before_is_left_as_it_is():
    found = _modules_after(
        "import json, sys\n"
        "import kfp\n"
        "from slipway.orchestration.local_run import import_kfp_sdk\n"
        "import_kfp_sdk()\n"
        "print(json.dumps({'client': 'kfp.client' in sys.modules, 'Client': hasattr(kfp, 'Client')}))\n"
    )
    assert found == {"client": True, "Client": True}


def test_the_request_and_the_pipeline_definition_need_no_pandas():
    found = _modules_after(
        "import json, sys\n"
        "from slipway.orchestration import resolve_request, run_training\n"
        "import pipelines.training_pipeline\n"
        "print(json.dumps(sorted(m for m in ('pandas', 'numpy') if m in sys.modules)))\n"
    )
    assert found == []


def test_the_check_program_compiles_without_pandas_or_kfps_api_client():
    found = _modules_after(
        "import json, runpy, sys\n"
        "sys.argv = ['pipelines', '--check']\n"
        "try:\n"
        "    runpy.run_module('pipelines', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as e:\n"
        "    code = e.code\n"
        "print(json.dumps({'code': code, 'loaded': sorted(m for m in ('pandas', 'kfp.client',"
        " 'kfp_server_api') if m in sys.modules), 'compiled': 'kfp.compiler' in sys.modules}))\n"
    )
    assert found == {"code": 0, "loaded": [], "compiled": True}

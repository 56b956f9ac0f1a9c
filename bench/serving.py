"""Benchmark: slipway's model server beside ``mlflow models serve`` and KServe's ModelServer.

All three serve the same fitted scikit-learn pipeline (StandardScaler + LogisticRegression on the
bundled breast-cancer data), one worker process each, on 127.0.0.1, driven by the same load
generator (wrk, a Lua script posting one row) at concurrency 1, 8 and 32 for ``--seconds`` each,
after a 2-second warm-up. Cold start is process start -> readiness answering 200. KServe runs in
its own virtualenv (``uv venv`` + ``uv pip install kserve``, cached under .slipway/bench/), with a
model class that does what KServe's sklearnserver does (``get_predict_input`` ->
``predict_proba`` -> ``get_predict_response``). Results go to docs/benchmarks.md.

    uv run python -m bench.serving [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bench.report import write_section

PROJECT = Path(__file__).resolve().parents[1]
KSERVE_VENV = PROJECT / ".slipway" / "bench" / "kserve-venv"
CONCURRENCY = (1, 8, 32)
MODEL = "slipway"
VERSION = "v1-20260101-be0c4a11"

KSERVE_MODEL = """
import sys, joblib, kserve
from kserve.utils.utils import get_predict_input, get_predict_response

class SklearnModel(kserve.Model):  # what kserve's sklearnserver does, with predict_proba
    def __init__(self, name, path):
        super().__init__(name)
        self.path = path
    def load(self):
        self._model = joblib.load(self.path)
        self.ready = True
        return self.ready
    def predict(self, payload, headers=None):
        instances = get_predict_input(payload)
        return get_predict_response(payload, self._model.predict_proba(instances), self.name)

model = SklearnModel(sys.argv[1], sys.argv[2])
model.load()
kserve.ModelServer(http_port=int(sys.argv[3]), grpc_port=int(sys.argv[4]), workers=1).start([model])
"""

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [==[%s]==]
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"errors\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_url: str
    infer_url: str
    body: dict
    env: dict[str, str]


def train():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    from slipway.data import DATASET_VERSIONS, TARGET, build_dataset

    frame = build_dataset(DATASET_VERSIONS["v2"])
    x, y = frame.drop(columns=[TARGET]), frame[TARGET]
    model = Pipeline([("scaler", StandardScaler()), ("clf", LogisticRegression(max_iter=5000))])
    return model.fit(x, y), x


def prepare_slipway(work: Path, model, x) -> Path:
    from slipway.packaging import LocalModelStore, PackageInfo, build_package

    info = PackageInfo(MODEL, VERSION, "be0c4a11" * 4, 1, {}, "bench", {})
    files = build_package(model, x, info, 0.37)
    efs = work / "efs"
    LocalModelStore(efs).put_package(MODEL, VERSION, files)
    return efs


def prepare_mlflow(work: Path, model, x) -> tuple[str, str]:
    """Log the model to a temporary MLflow store; returns (tracking URI, model URI)."""
    import mlflow
    import sklearn

    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    experiment = mlflow.create_experiment("bench", artifact_location=str(work / "mlartifacts"))
    with mlflow.start_run(experiment_id=experiment) as run:
        mlflow.sklearn.log_model(
            model,
            name="model",
            input_example=x.iloc[:1],
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    return uri, f"runs:/{run.info.run_id}/model"


def prepare_kserve(work: Path, model) -> tuple[Path | None, str]:
    """The KServe virtualenv's python (created once) and the joblib model; or None and why."""
    import joblib
    import sklearn

    python = KSERVE_VENV / "bin" / "python"
    if not python.exists():
        KSERVE_VENV.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        steps = [
            ["uv", "venv", "-q", "--python", sys.executable, str(KSERVE_VENV)],
            [
                "uv",
                "pip",
                "install",
                "-q",
                "--python",
                str(python),
                "kserve",
                f"scikit-learn=={sklearn.__version__}",
                "joblib",
            ],
        ]
        for step in steps:
            done = subprocess.run(step, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                return None, f"`{' '.join(step[:3])}` failed: {done.stderr.strip()[-300:]}"
        print(f"kserve venv installed in {time.perf_counter() - started:.1f} s")
    joblib.dump(model, work / "model.joblib")
    (work / "kserve_model.py").write_text(KSERVE_MODEL)
    version = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('kserve'))"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    return python, version


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(server: Server, log: Path) -> tuple[subprocess.Popen, float]:
    """Start ``server``; returns the process and seconds from start to a 200 from readiness."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        server.argv,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **server.env},
    )
    while time.perf_counter() - started < 180:
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited: {log.read_text()[-1500:]}")
        try:
            with urllib.request.urlopen(server.ready_url, timeout=1) as response:
                if response.status == 200:
                    return proc, time.perf_counter() - started
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.05)
    stop(proc)
    raise TimeoutError(f"{server.name} not ready in 180 s: {log.read_text()[-1500:]}")


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    except ProcessLookupError:
        pass


def wrk(url: str, script: Path, connections: int, seconds: int) -> dict:
    argv = [
        "wrk",
        f"-t{min(2, connections)}",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        url,
    ]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    lines = [line for line in out.splitlines() if line.startswith("BENCH ")]
    if not lines:
        raise RuntimeError(f"wrk printed no result: {out[-800:]}")
    line = lines[0]
    result = json.loads(line.removeprefix("BENCH "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def check_answer(server: Server) -> None:
    request = urllib.request.Request(
        server.infer_url,
        data=json.dumps(server.body).encode(),
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200, server.name


def in_process_floor(model, x, efs: Path) -> dict[str, float]:
    """Microseconds per call: sklearn predict_proba, ONNX Runtime, our whole request path."""
    import orjson

    from slipway.serving.model import load_model
    from slipway.serving.protocol import parse_infer_request

    row = x.iloc[:1]
    loaded = load_model(efs, MODEL, VERSION)
    body = orjson.dumps(oip_body(x))
    features = list(x.columns)

    def request_path() -> bytes:
        rows, _ = parse_infer_request(orjson.loads(body), features, 1024)
        labels, proba = loaded.predict(rows)
        return orjson.dumps({"outputs": [labels, proba]}, option=orjson.OPT_SERIALIZE_NUMPY)

    def per_call(fn, n: int) -> float:
        fn()
        started = time.perf_counter()
        for _ in range(n):
            fn()
        return (time.perf_counter() - started) / n * 1e6

    array = row.to_numpy()
    return {
        "sklearn predict_proba (1 row)": per_call(lambda: model.predict_proba(row), 300),
        "ONNX Runtime (1 row)": per_call(lambda: loaded.predict(array), 3000),
        "slipway parse + predict + serialise": per_call(request_path, 3000),
    }


def oip_body(x) -> dict:
    return {
        "inputs": [
            {"name": "input-0", "shape": [1, 30], "datatype": "FP64", "data": x.iloc[0].tolist()}
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    if subprocess.run(["which", "wrk"], capture_output=True, check=False).returncode:
        sys.exit("wrk is missing: scripts/ensure-debian-tools.sh wrk:wrk")

    work = Path(tempfile.mkdtemp(prefix="slipway-bench-serving-"))
    model, x = train()
    efs = prepare_slipway(work, model, x)
    tracking, model_uri = prepare_mlflow(work, model, x)
    kserve_python, kserve_note = prepare_kserve(work, model)
    floor = in_process_floor(model, x, efs)

    venv_bin = Path(sys.executable).parent
    servers = []
    for workers in (1, 2):
        port = free_port()
        servers.append(
            Server(
                f"slipway ({workers} worker{'s' if workers > 1 else ''})",
                [
                    sys.executable,
                    "-m",
                    "slipway.cli.serve",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    str(workers),
                ],
                f"http://127.0.0.1:{port}/v2/health/ready",
                f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer",
                oip_body(x),
                {
                    "SLIPWAY_EFS_ROOT": str(efs),
                    "SLIPWAY_MODEL_VERSION": VERSION,
                    "SLIPWAY_STATE_DIR": str(work / "state"),
                    "PROMETHEUS_MULTIPROC_DIR": str(work / f"metrics-{workers}"),
                },
            )
        )
    port = free_port()
    servers.append(
        Server(
            "mlflow models serve",
            [
                str(venv_bin / "mlflow"),
                "models",
                "serve",
                "-m",
                model_uri,
                "--env-manager",
                "local",
                "-h",
                "127.0.0.1",
                "-p",
                str(port),
                "-w",
                "1",
            ],
            f"http://127.0.0.1:{port}/ping",
            f"http://127.0.0.1:{port}/invocations",
            {"dataframe_split": {"columns": list(x.columns), "data": [x.iloc[0].tolist()]}},
            # mlflow starts `uvicorn` from PATH
            {"MLFLOW_TRACKING_URI": tracking, "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}"},
        )
    )
    if kserve_python is not None:
        port = free_port()
        servers.append(
            Server(
                f"KServe ModelServer {kserve_note}",
                [
                    str(kserve_python),
                    str(work / "kserve_model.py"),
                    MODEL,
                    str(work / "model.joblib"),
                    str(port),
                    str(free_port()),
                ],
                f"http://127.0.0.1:{port}/v2/models/{MODEL}/ready",
                f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer",
                oip_body(x),
                {},
            )
        )

    results: dict[str, dict] = {}
    for server in servers:
        script = work / f"{len(results)}.lua"
        script.write_text(LUA % json.dumps(server.body))
        proc, cold = start(server, work / f"{len(results)}.log")
        try:
            check_answer(server)
            wrk(server.infer_url, script, 8, 2)  # warm-up
            runs = {c: wrk(server.infer_url, script, c, args.seconds) for c in CONCURRENCY}
        finally:
            stop(proc)
        results[server.name] = {"cold_start_s": cold, "runs": runs}
        print(
            server.name,
            f"cold {cold:.2f} s",
            {
                c: f"{r['rps']:.0f} rps p99 {r['p99_us'] / 1000:.1f} ms err {r['errors']}"
                for c, r in runs.items()
            },
            flush=True,
        )

    body = render(results, floor, kserve_note if kserve_python is None else None, args.seconds)
    print(body)
    print(f"written to {write_section('serving', body)}")


def render(results: dict, floor: dict, kserve_missing: str | None, seconds: int) -> str:
    lines = [
        "### Model server: slipway vs MLflow vs KServe",
        "",
        f"`make bench` (`python -m bench.serving --seconds {seconds}`): one row posted by wrk,",
        f"{seconds} s per concurrency after a 2 s warm-up, every server on 127.0.0.1 with one",
        "worker process unless named; the same fitted pipeline (StandardScaler +",
        "LogisticRegression). wrk shares the 2 cores with the server, so absolute numbers are",
        "low; the ratios are the point. Cold start = process start to readiness 200.",
        "",
        "| server | concurrency | requests/s | p50 ms | p99 ms | errors | cold start s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, result in results.items():
        for c, r in result["runs"].items():
            lines.append(
                f"| {name} | {c} | {r['rps']:,.0f} | {r['p50_us'] / 1000:.2f} | "
                f"{r['p99_us'] / 1000:.2f} | {r['errors']} | {result['cold_start_s']:.2f} |"
            )
    ours = results.get("slipway (1 worker)")
    lines += ["", "Ratios at concurrency 8 (slipway with 1 worker against each):", ""]
    for name, result in results.items():
        if ours is None or name.startswith("slipway"):
            continue
        mine, theirs = ours["runs"][8], result["runs"][8]
        lines.append(
            f"- vs {name}: throughput x{mine['rps'] / theirs['rps']:.1f}, "
            f"p99 {mine['p99_us'] / 1000:.2f} ms vs {theirs['p99_us'] / 1000:.2f} ms, "
            f"cold start {ours['cold_start_s']:.2f} s vs {result['cold_start_s']:.2f} s"
        )
    if kserve_missing:
        lines.append(f"- KServe not measured: {kserve_missing}")
    lines += ["", "In-process floor (one process, no HTTP), microseconds per call:", ""]
    lines += [f"- {k}: {v:,.1f} µs" for k, v in floor.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

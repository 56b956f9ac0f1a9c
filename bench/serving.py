"""Benchmark: slipway's model server beside its HTTP floors, ``mlflow models serve`` and KServe.

Every server serves the same fitted scikit-learn pipeline (StandardScaler + LogisticRegression
on the bundled breast-cancer data), one worker process each unless named, on 127.0.0.1, driven
by the same load generator (wrk, a Lua script posting one row) at concurrency 1, 8 and 32 for
``--seconds`` each, after a 2-second warm-up. Cold start is process start -> readiness answering
200. KServe runs in its own virtualenv (``uv venv`` + ``uv pip install kserve``, cached under
.slipway/bench/), with a model class that does what KServe's sklearnserver does
(``get_predict_input`` -> ``predict_proba`` -> ``get_predict_response``).

Two floors (:mod:`bench.floors`) run on slipway's stack (uvicorn, uvloop, httptools, access log
off): an app answering a constant (HTTP alone) and one doing exactly the server's work (orjson
parse, float64 array, one ONNX Runtime call on the package's ``model.onnx``, orjson answer).
slipway's throughput is reported as a share of each, measured in the same round, and once
more from a pair of concurrency-8 runs of slipway and the same-work floor back to back (the
order alternating by round), which the host's other load moves less. Then slipway
and the same-work floor answer 1,024-row requests (rows/s), as JSON and as binary tensor data
(the floor's twin: ``np.frombuffer`` on the bytes after the JSON header). ``--repeats`` rounds run over
servers started once; every figure is the median over rounds. Results go to docs/benchmarks.md
(only when every server ran: ``--only`` prints).

    uv run python -m bench.serving [--seconds 10] [--repeats 3] [--only slipway,floors]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

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

BATCH_ROWS = 1024
# the body is read from a file: large (a 1,024-row body is ~600 KB) or binary bodies stay intact
LUA = """
wrk.method = "POST"
%(headers)s
local f = assert(io.open("%(body)s", "rb"))
wrk.body = f:read("*a")
f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\\"requests\\": %%d, \\"duration_us\\": %%d, \\"errors\\": %%d, \\"p50_us\\": %%d, \\"p99_us\\": %%d}\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
"""
JSON_HEADERS = {"Content-Type": "application/json"}


@dataclass
class Server:
    name: str
    argv: list[str]
    ready_url: str
    infer_url: str
    body: dict
    env: dict[str, str]
    group: str  # what --only selects: slipway, floors, mlflow, kserve


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


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of process ``pid`` and of its live descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / tick
    tree, grew = {pid}, True
    while grew:
        more = {c for c, p in parents.items() if p in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(p, 0.0) for p in tree)


def wrk(url: str, script: Path, connections: int, seconds: int, pid: int | None = None) -> dict:
    """One wrk run; with ``pid``, also the server's CPU microseconds per request."""
    cpu_before = cpu_seconds(pid) if pid else 0.0
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
    if pid:
        cpu = cpu_seconds(pid) - cpu_before
        result["cpu_us"] = cpu / max(result["requests"], 1) * 1e6
    return result


def check_answer(server: Server) -> None:
    request = urllib.request.Request(
        server.infer_url,
        data=compact_json(server.body),
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


def oip_body(x, rows: int = 1) -> dict:
    """An OIP infer body of ``rows`` rows (the data's rows, repeated as needed)."""
    data = x.to_numpy()[np.arange(rows) % len(x)]
    return {
        "inputs": [
            {
                "name": "input-0",
                "shape": [rows, data.shape[1]],
                "datatype": "FP64",
                "data": data.ravel().tolist(),
            }
        ]
    }


def binary_body(x, rows: int) -> tuple[bytes, dict[str, str]]:
    """An OIP infer body with ``input-0`` as binary tensor data (FP64), and its headers.

    As KServe's and Triton's clients send it: a JSON header whose tensor has
    ``parameters.binary_data_size``, then the raw little-endian float64 values;
    ``Inference-Header-Content-Length`` gives the JSON part's length.
    """
    data = np.ascontiguousarray(x.to_numpy()[np.arange(rows) % len(x)], dtype="<f8")
    raw = data.tobytes()
    tensor = {"name": "input-0", "shape": list(data.shape), "datatype": "FP64"}
    tensor["parameters"] = {"binary_data_size": len(raw)}
    header = compact_json({"inputs": [tensor]})
    return header + raw, {
        "Content-Type": "application/octet-stream",
        "Inference-Header-Content-Length": str(len(header)),
    }


def lua_script(work: Path, name: str, body: bytes, headers: dict[str, str]) -> Path:
    """A wrk script posting ``body`` (kept in a file beside it) with ``headers``."""
    (work / f"{name}.body").write_bytes(body)
    lines = "\n".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items())
    script = work / f"{name}.lua"
    script.write_text(LUA % {"headers": lines, "body": work / f"{name}.body"})
    return script


def slipway_server(work: Path, efs: Path, x, workers: int) -> Server:
    port = free_port()
    return Server(
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
        "slipway" if workers == 1 else "slipway-2",
    )


def floor_server(name: str, app: str, x, onnx: Path) -> Server:
    """A :mod:`bench.floors` app under uvicorn with slipway's settings (uvloop, httptools)."""
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", "1", "--loop", "uvloop", "--http", "httptools", "--no-access-log"]
    argv += ["--lifespan", "off", "--log-level", "warning"]
    if app.endswith("same_work"):
        argv.append("--factory")
    return Server(
        name,
        argv,
        f"http://127.0.0.1:{port}/",
        f"http://127.0.0.1:{port}/v2/models/{MODEL}/infer",
        oip_body(x),
        {"SLIPWAY_FLOOR_ONNX": str(onnx), "PYTHONPATH": str(PROJECT)},
        "floors",
    )


FLOOR_CONSTANT = "floor: constant answer"
FLOOR_SAME_WORK = "floor: same work (orjson, numpy, ONNX Runtime)"
SLIPWAY_1 = "slipway (1 worker)"
PAIRED = "paired"  # a round's back-to-back concurrency-8 runs of SLIPWAY_1 and FLOOR_SAME_WORK


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1, help="rounds; figures are medians")
    parser.add_argument(
        "--only",
        default="",
        help="comma-separated groups to run (slipway, slipway-2, floors, mlflow, kserve); "
        "prints only",
    )
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated; 8 for ratios")
    args = parser.parse_args()
    if subprocess.run(["which", "wrk"], capture_output=True, check=False).returncode:
        sys.exit("wrk is missing: scripts/ensure-debian-tools.sh wrk:wrk")
    everything = {"slipway", "slipway-2", "floors", "mlflow", "kserve"}
    groups = {g for g in args.only.split(",") if g} or everything
    concurrency = [int(c) for c in args.concurrency.split(",")]

    work = Path(tempfile.mkdtemp(prefix="slipway-bench-serving-"))
    model, x = train()
    efs = prepare_slipway(work, model, x)
    floor = in_process_floor(model, x, efs)
    onnx = efs / MODEL / VERSION / "model.onnx"

    servers = [slipway_server(work, efs, x, 1), slipway_server(work, efs, x, 2)]
    servers.append(floor_server(FLOOR_CONSTANT, "bench.floors:constant", x, onnx))
    servers.append(floor_server(FLOOR_SAME_WORK, "bench.floors:same_work", x, onnx))
    kserve_note = None
    if "mlflow" in groups:
        tracking, model_uri = prepare_mlflow(work, model, x)
        venv_bin = Path(sys.executable).parent
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
                {
                    "MLFLOW_TRACKING_URI": tracking,
                    "PATH": f"{venv_bin}:{os.environ.get('PATH', '')}",
                },
                "mlflow",
            )
        )
    if "kserve" in groups:
        kserve_python, kserve_note = prepare_kserve(work, model)
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
                    "kserve",
                )
            )
            kserve_note = None
    servers = [s for s in servers if s.group in groups]

    # the batch requests: (label, body, headers), posted at concurrency 8 to slipway (1 worker)
    # and the same-work floor
    batches = [
        (f"JSON, {BATCH_ROWS} rows", compact_json(oip_body(x, BATCH_ROWS)), JSON_HEADERS),
        (f"binary, {BATCH_ROWS} rows", *binary_body(x, BATCH_ROWS)),
    ]

    procs: dict[str, tuple[subprocess.Popen, float]] = {}
    scripts = {}
    rounds: list[dict[str, dict]] = []
    try:
        for i, server in enumerate(servers):
            scripts[server.name] = lua_script(
                work, f"s{i}", compact_json(server.body), JSON_HEADERS
            )
            procs[server.name] = start(server, work / f"{i}.log")
            check_answer(server)
            print(f"{server.name}: ready in {procs[server.name][1]:.2f} s", flush=True)
        batch_scripts = [
            (label, lua_script(work, f"b{j}", body, headers))
            for j, (label, body, headers) in enumerate(batches)
        ]
        for r in range(args.repeats):
            result: dict[str, dict] = {}
            for server in servers:
                script = scripts[server.name]
                pid = procs[server.name][0].pid
                wrk(server.infer_url, script, 8, 2)  # warm-up
                result[server.name] = {
                    c: wrk(server.infer_url, script, c, args.seconds, pid) for c in concurrency
                }
                print(f"round {r + 1}", server.name, summary(result[server.name]), flush=True)
            # slipway and the same-work floor back to back (order alternating by round): the
            # ratio from runs seconds apart, not minutes, as the host's other load drifts
            pair = [s for s in servers if s.name in (SLIPWAY_1, FLOOR_SAME_WORK)]
            if len(pair) == 2 and 8 in concurrency:
                result[PAIRED] = {}
                for server in pair if r % 2 == 0 else pair[::-1]:
                    pid = procs[server.name][0].pid
                    run = wrk(server.infer_url, scripts[server.name], 8, args.seconds, pid)
                    result[PAIRED][server.name] = run
                    print(f"round {r + 1} paired", server.name, summary({8: run}), flush=True)
            for server in servers:
                if server.name not in (SLIPWAY_1, FLOOR_SAME_WORK):
                    continue
                for label, script in batch_scripts:
                    run = wrk(server.infer_url, script, 8, args.seconds, procs[server.name][0].pid)
                    result[f"{server.name} | {label}"] = {8: run}
                    print(f"round {r + 1}", server.name, label, summary({8: run}), flush=True)
            rounds.append(result)
    finally:
        for proc, _ in procs.values():
            stop(proc)

    cold = {name: seconds for name, (_, seconds) in procs.items()}
    body = render(rounds, cold, floor, kserve_note, args.seconds, args.repeats)
    print(body)
    if groups == everything and concurrency == list(CONCURRENCY):
        print(f"written to {write_section('serving', body)}")


def compact_json(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def summary(runs: dict) -> dict:
    return {
        c: f"{r['rps']:.0f} rps p99 {r['p99_us'] / 1000:.1f} ms err {r['errors']} "
        f"cpu {r['cpu_us']:.0f} µs/req"
        for c, r in runs.items()
    }


def median_run(rounds: list[dict], name: str, c: int) -> dict:
    """The median over rounds of each figure of ``name`` at concurrency ``c``; errors summed."""
    runs = [r[name][c] for r in rounds]
    keys = ("rps", "p50_us", "p99_us", "cpu_us")
    merged = {k: statistics.median(run[k] for run in runs) for k in keys}
    merged["errors"] = sum(run["errors"] for run in runs)
    return merged


def render(
    rounds: list[dict],
    cold: dict[str, float],
    floor: dict,
    kserve_missing: str | None,
    seconds: int,
    repeats: int,
) -> str:
    lines = [
        "### Model server: slipway vs its HTTP floors, MLflow and KServe",
        "",
        f"`make bench` (`python -m bench.serving --seconds {seconds} --repeats {repeats}`):",
        f"one row posted by wrk, {seconds} s per concurrency after a 2 s warm-up, every server",
        "on 127.0.0.1 with one worker process unless named; the same fitted pipeline",
        "(StandardScaler + LogisticRegression). The floors (`bench/floors.py`) run on",
        "slipway's stack (uvicorn, uvloop, httptools, access log off). wrk shares the 2 cores",
        f"with the server, so absolute numbers are low; the ratios are the point. Median of {repeats}",
        "round(s) over servers started once (errors: the sum). Cold start = process start to",
        "readiness 200. CPU µs/request = the server processes' user + system time over the run",
        "(/proc) divided by the requests answered: what a request costs the server, which other",
        "load on the machine changes far less than requests/s.",
        "",
        "| server | concurrency | requests/s | p50 ms | p99 ms | errors | CPU µs/request "
        "| cold start s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    names = [n for n in rounds[0] if " | " not in n and n != PAIRED]
    for name in names:
        for c in rounds[0][name]:
            r = median_run(rounds, name, c)
            lines.append(
                f"| {name} | {c} | {r['rps']:,.0f} | {r['p50_us'] / 1000:.2f} | "
                f"{r['p99_us'] / 1000:.2f} | {r['errors']} | {r['cpu_us']:,.0f} | "
                f"{cold[name]:.2f} |"
            )
    if SLIPWAY_1 in names and 8 in rounds[0][SLIPWAY_1]:
        lines += [
            "",
            "Against the floors at concurrency 8 (slipway with 1 worker, same round):",
            "",
        ]
        for floor_name in (FLOOR_SAME_WORK, FLOOR_CONSTANT):
            if floor_name not in names:
                continue
            shares = [r[SLIPWAY_1][8]["rps"] / r[floor_name][8]["rps"] for r in rounds]
            cpu = [r[floor_name][8]["cpu_us"] / r[SLIPWAY_1][8]["cpu_us"] for r in rounds]
            lines.append(
                f"- {floor_name}: throughput {statistics.median(shares):.0%} of it (rounds: "
                f"{', '.join(f'{s:.0%}' for s in shares)}); by CPU per request "
                f"{statistics.median(cpu):.0%} (rounds: {', '.join(f'{s:.0%}' for s in cpu)})"
            )
        paired = [r[PAIRED] for r in rounds if PAIRED in r]
        if paired:
            shares = [p[SLIPWAY_1]["rps"] / p[FLOOR_SAME_WORK]["rps"] for p in paired]
            cpu = [p[FLOOR_SAME_WORK]["cpu_us"] / p[SLIPWAY_1]["cpu_us"] for p in paired]
            p99 = [p[SLIPWAY_1]["p99_us"] / 1000 for p in paired]
            errors = sum(p[SLIPWAY_1]["errors"] for p in paired)
            lines.append(
                f"- {FLOOR_SAME_WORK}, back to back (one more pair of {seconds} s runs a round, "
                "the order alternating): throughput "
                f"{statistics.median(shares):.0%} of it (rounds: "
                f"{', '.join(f'{s:.0%}' for s in shares)}); by CPU per request "
                f"{statistics.median(cpu):.0%} (rounds: {', '.join(f'{s:.0%}' for s in cpu)}); "
                f"slipway's p99 {statistics.median(p99):.2f} ms, {errors} errors"
            )
        mine = median_run(rounds, SLIPWAY_1, 8)
        for name in names:
            if name.startswith(("slipway", "floor")):
                continue
            theirs = median_run(rounds, name, 8)
            lines.append(
                f"- vs {name}: throughput x{mine['rps'] / theirs['rps']:.1f}, "
                f"p99 {mine['p99_us'] / 1000:.2f} ms vs {theirs['p99_us'] / 1000:.2f} ms, "
                f"cold start {cold[SLIPWAY_1]:.2f} s vs {cold[name]:.2f} s"
            )
    if kserve_missing:
        lines.append(f"- KServe not measured: {kserve_missing}")
    batch = [n for n in rounds[0] if " | " in n and n != PAIRED]
    if batch:
        lines += [
            "",
            f"Batches at concurrency 8 ({BATCH_ROWS} rows a request, {seconds} s):",
            "",
            "| server | request | requests/s | rows/s | p99 ms | errors | CPU µs/request |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for name in batch:
            r = median_run(rounds, name, 8)
            server, label = name.split(" | ")
            lines.append(
                f"| {server} | {label} | {r['rps']:,.0f} | {r['rps'] * BATCH_ROWS:,.0f} | "
                f"{r['p99_us'] / 1000:.2f} | {r['errors']} | {r['cpu_us']:,.0f} |"
            )
    lines += ["", "In-process floor (one process, no HTTP), microseconds per call:", ""]
    lines += [f"- {k}: {v:,.1f} µs" for k, v in floor.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Fixtures shared by all tests: real brokers on free loopback ports, plain or with TLS and passwords."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from dnnprof.agent.models import zoo

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session", autouse=True)
def _private_state_session(tmp_path_factory):
    """`dnnagent run` keeps its outboxes under $XDG_STATE_HOME: the tests' own, never the machine user's (this one
    for session- and module-wide fixtures; each test gets a fresh one below)."""
    os.environ["XDG_STATE_HOME"] = str(tmp_path_factory.mktemp("xdg-state"))
    # Converted models and decoded images: the tests' own cache (shared by the session), not the user's.
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))


@pytest.fixture(autouse=True)
def _private_state(tmp_path_factory, monkeypatch):
    """Each test's agents start with no outbox an earlier test left (same board ids across tests)."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path_factory.mktemp("xdg-state")))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class Brokers:
    """Private Mosquittos for one test, each with its own config on a loopback port; all stopped (resumed first
    if a test paused one with SIGSTOP) when the test ends."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.procs: list[subprocess.Popen] = []

    def start(self, port: int | None = None, wait: bool = True) -> tuple[subprocess.Popen, str]:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        if not Path(binary).exists():
            pytest.fail("mosquitto is not installed: apt-get install mosquitto")
        port = port or free_port()
        conf = self.tmp_path / f"mosquitto-{port}.conf"
        conf.write_text(
            f"listener {port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            # The default of 1000 silently drops QoS1 messages queued for a subscriber that falls behind.
            "max_queued_messages 0\n"
            "max_inflight_messages 0\n"
            f"log_dest file {self.tmp_path / f'mosquitto-{port}.log'}\n"
        )
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        if wait:
            wait_for_port(port)
        return proc, f"127.0.0.1:{port}"

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)
                proc.terminate()
                proc.wait(10)


@pytest.fixture
def brokers(tmp_path: Path):
    """``brokers.start(port=None) -> (process, "127.0.0.1:PORT")``: Mosquittos a test controls (kill, pause)."""
    b = Brokers(tmp_path)
    try:
        yield b
    finally:
        b.stop_all()


@pytest.fixture
def mosquitto(brokers: Brokers):
    """A private Mosquitto on a free port, configured not to drop QoS1 messages for a slow subscriber."""
    return brokers.start()[1]


def openssl(cwd: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def need_tls_tools() -> None:
    if shutil.which("openssl") is None or shutil.which("mosquitto_passwd") is None:
        pytest.skip("needs the openssl and mosquitto_passwd commands")


@pytest.fixture(scope="session")
def pki(tmp_path_factory) -> Path:
    """ca.crt/key; server.crt/key for 127.0.0.1; client.crt/key; other-ca.crt (a CA that signed nothing here)."""
    need_tls_tools()
    d = tmp_path_factory.mktemp("pki")
    for ca in ("ca", "other-ca"):
        openssl(d, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                "-days", "2", "-subj", f"/CN={ca}")
    (d / "san.ext").write_text("subjectAltName = IP:127.0.0.1\n")
    for name, extra in (("server", ["-extfile", "san.ext"]), ("client", [])):
        openssl(d, "req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}")
        openssl(d, "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", f"{name}.crt", "-days", "2", *extra)
    (d / "client.key").chmod(0o600)
    return d


def _start_tls_mosquitto(tmp_path: Path, pki: Path, users: dict[str, str], extra: str,
                         port: int | None = None) -> tuple[subprocess.Popen, int]:
    passwords = tmp_path / "passwd"
    for n, (user, password) in enumerate(users.items()):
        subprocess.run(["mosquitto_passwd", "-b", *(["-c"] if n == 0 else []), str(passwords), user, password],
                       check=True, capture_output=True)
    port = port or free_port()
    conf = tmp_path / "mosquitto-tls.conf"
    conf.write_text(f"listener {port} 127.0.0.1\n"
                    f"cafile {pki / 'ca.crt'}\ncertfile {pki / 'server.crt'}\nkeyfile {pki / 'server.key'}\n"
                    f"password_file {passwords}\nallow_anonymous false\npersistence false\n"
                    f"log_dest file {tmp_path / 'mosquitto-tls.log'}\n"
                    "user root\n"  # as root Mosquitto would switch to its own user, who cannot read tmp_path
                    + extra)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc, port
        if proc.poll() is not None:
            pytest.fail(f"mosquitto with TLS did not start: {proc.stderr.read()}")
        time.sleep(0.05)
    proc.terminate()
    pytest.fail("mosquitto with TLS did not listen within 10 s")


@pytest.fixture
def tls_mosquitto(tmp_path: Path, pki: Path):
    """``tls_mosquitto(users, extra="", port=None) -> port``: a Mosquitto on a free port (or ``port``: to start it
    again where it was) that only takes TLS (server certificate for 127.0.0.1 from ``pki``) and these users'
    passwords; ``extra``: more config lines (require_certificate, acl_file, persistence). ``tls_mosquitto.stop(port)``
    stops it the clean way (SIGTERM: a persistent one saves its sessions). All stopped when the test ends.
    Conftest modules are not importable by name, hence a fixture."""
    procs: dict[int, subprocess.Popen] = {}

    def stop(port: int) -> None:
        proc = procs.pop(port)
        proc.terminate()
        proc.wait(10)
        proc.stderr.close()

    def start(users: dict[str, str], extra: str = "", port: int | None = None) -> int:
        proc, port = _start_tls_mosquitto(tmp_path, pki, users, extra, port)
        procs[port] = proc
        return port

    start.stop = stop
    try:
        yield start
    finally:
        for port in list(procs):
            stop(port)


# --- ONNX files: one real generated network and tiny hand-built graphs for the edge cases (agent and shared tests) --

SMALL = "shufflenet_v2_x0_5"  # the fastest network of the zoo on a CPU


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A directory holding one generated network, shared by every test (read it, never write into it)."""
    out = tmp_path_factory.mktemp("models")
    zoo.generate([SMALL], out)
    return out


@pytest.fixture(scope="session")
def model_path(model_dir) -> Path:
    return model_dir / f"{SMALL}.onnx"


def _tiny(path: Path, *, batch: int | str = "N", inputs: int = 1, op: str = "Conv",
          elem_type: int = TensorProto.FLOAT, shape: tuple = (3, 8, 8)) -> Path:
    """A one-node graph: Conv (3->4 channels, 3x3) on each input, or ``op`` if it is something else."""
    names = [f"x{i}" for i in range(inputs)]
    graph_inputs = [helper.make_tensor_value_info(n, elem_type, [batch, *shape]) for n in names]
    initializers = []
    if op == "Conv":
        weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, shape[0], 3, 3),
                                                                                    dtype=np.float32), "w")
        initializers.append(weight)
        nodes = [helper.make_node("Conv", [n, "w"], [f"y{i}"], pads=[1, 1, 1, 1]) for i, n in enumerate(names)]
        out_shape = [batch, 4, *shape[1:]]
    else:
        nodes = [helper.make_node(op, [n], [f"y{i}"]) for i, n in enumerate(names)]
        out_shape = [batch, *shape]
    outputs = [helper.make_tensor_value_info(f"y{i}", TensorProto.FLOAT, out_shape) for i in range(inputs)]
    graph = helper.make_graph(nodes, "tiny", graph_inputs, outputs, initializer=initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=7)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def make_onnx():
    """``make_onnx(path, batch=1, inputs=2, op="NoSuchOp", ...)`` writes a tiny ONNX file and returns its path."""
    return _tiny


# --- A classifier with a real accuracy: trained here on scikit-learn's bundled handwritten digits ------------------
# No network weights can be downloaded here, so accuracy is measured on a model trained in the session
# (bench/_digits.py builds it: bench/accuracy.py measures the same model by hand).


@pytest.fixture(scope="session")
def digits(tmp_path_factory):
    """``.model`` (ONNX, input N x 3 x 8 x 8), ``.manifest`` (with its preprocessing), ``.test`` (labelled PNGs in
    class folders), ``.calibration`` (training PNGs), ``.own_top1`` (the trained model's accuracy on the test
    images, percent) and ``.n_test``."""
    return bench_module("_digits").build(tmp_path_factory.mktemp("digits"))


def bench_module(name: str):
    """A helper module of bench/ (``_digits``, ``_postgres``): the benchmarks and the tests build with the same."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(f"dnnprof_bench{name}", DATA.parent.parent / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# --- PostgreSQL: a private server of the tests' own (initdb into a temporary folder, its own port) ----------------


@pytest.fixture(scope="session")
def postgres():
    """One private PostgreSQL server for the session, started on first use; each test takes a new database."""
    server = bench_module("_postgres").PrivatePostgres().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_db(request, tmp_path):
    """A factory of new, empty store locations on one engine (each test runs on both): SQLite files in the test's
    folder, or new databases on the private PostgreSQL."""
    if request.param == "sqlite":
        names = iter(range(1_000_000))
        return lambda: tmp_path / f"store-{next(names)}.sqlite"
    server = request.getfixturevalue("postgres")
    return server.database


@pytest.fixture
def db(fresh_db):
    """A new, empty store location (``--db``), on SQLite and on PostgreSQL."""
    return fresh_db()

"""Fixtures shared by all tests: real brokers on free loopback ports."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"


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

"""A real `mlflow server` on 127.0.0.1 for tests: a free port, waited for, always stopped."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tdsclip.track import child_environment


def free_port() -> int:
    """A port nobody listens on right now (bound to port 0, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM to the server's process group (it and its workers), SIGKILL if it lingers."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            os.killpg(proc.pid, 0)  # the leader is gone; are its workers?
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def mlflow_server(root: Path, attempts: int = 3) -> Iterator[str]:
    """Start `mlflow server` (sqlite store and artifacts under root), yield its URL, stop it.
    Another process may grab the port between our check and the server's bind: then try anew."""
    root.mkdir(parents=True, exist_ok=True)
    for attempt in range(attempts):
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        log_path = root / f"server-{port}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mlflow",
                    "server",
                    "--backend-store-uri",
                    f"sqlite:///{root}/server.db",
                    "--artifacts-destination",
                    str(root / "artifacts"),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                    "--workers",
                    "1",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=child_environment(os.environ),
            )
        try:
            deadline = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < deadline and not _healthy(url):
                time.sleep(0.25)
            if proc.poll() is None and _healthy(url):
                yield url
                return
        finally:
            _stop(proc)
        if attempt == attempts - 1:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"mlflow server on port {port} never became healthy; its log ends:\n{tail}")

"""`beatlab tune --address`: a tiny search across a real two-node Ray cluster on this machine."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

RAY = Path(sys.executable).with_name("ray")
BEATLAB = Path(sys.executable).with_name("beatlab")
STARTED = "Ray runtime started."

pytestmark = pytest.mark.skipif(not RAY.exists(), reason=f"no ray CLI at {RAY}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def ray_node(log: Path, env: dict[str, str], *args: str) -> Iterator[None]:
    """`ray start --block ARGS` until the node is up; on exit SIGTERM stops it, and it stops
    only the processes it started (unlike `ray stop`, which stops every Ray on the machine)."""
    with open(log, "w") as out:
        node = subprocess.Popen(
            [str(RAY), "start", "--block", "--num-cpus=1", *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while STARTED not in log.read_text():
            assert node.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"node did not start:\n{log.read_text()}"
            time.sleep(0.5)
        yield
    finally:
        node.terminate()
        try:
            node.wait(timeout=60)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


def test_search_runs_across_a_two_node_cluster(real_data_dir: Path, tmp_path: Path) -> None:
    # Ray authenticates cluster members by token: one for the nodes and the driver. The driver
    # is a process of its own, as it would be on a cluster (a process keeps its first token).
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    space = tmp_path / "space.toml"
    space.write_text("batch = {choice = [32, 64]}\nfilters = 8\ndense = 16\n")
    # Ray's socket paths must stay short, so its temp folders go directly under /tmp
    temp = Path(tempfile.mkdtemp(prefix="bt-ray-", dir="/tmp"))
    port = free_port()
    address = f"127.0.0.1:{port}"
    head = ["--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}/head"]
    worker = [f"--address={address}", f"--temp-dir={temp}/worker"]
    try:
        with (
            ray_node(tmp_path / "head.log", env, *head),
            ray_node(tmp_path / "worker.log", env, *worker),
        ):
            search = subprocess.run(
                [
                    str(BEATLAB),
                    "tune",
                    "--model",
                    "cnn1d_resnet",
                    "--space",
                    str(space),
                    "--search",
                    "random",
                    "--scheduler",
                    "fifo",
                    "--samples",
                    "2",
                    "--concurrency",
                    "2",
                    "--max-epochs",
                    "1",
                    "--limit",
                    "300",
                    "--address",
                    address,
                    "--name",
                    "cluster",
                    "--experiments-dir",
                    str(tmp_path / "experiments"),
                    "--data-dir",
                    str(real_data_dir),
                    "--tracking-uri",
                    "none",
                ],
                env=env,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert search.returncode == 0, search.stdout + search.stderr
            assert "2 of 2 trials finished, 0 failed" in search.stdout
            summary = json.loads((tmp_path / "experiments/cluster/summary.json").read_text())
            assert summary["test"]["n"] > 20_000
            # one CPU per node and per trial: the two trials ran on the two nodes at once
            for node in ("head", "worker"):
                logs = (temp / node).glob("session_*/logs/worker-*.out")
                assert any(":actor_name:run_trial" in log.read_text() for log in logs), node
    finally:
        shutil.rmtree(temp, ignore_errors=True)

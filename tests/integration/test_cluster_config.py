"""A cluster node's configuration (issue 14): a cluster shares PostgreSQL, never SQLite."""

from __future__ import annotations

from pathlib import Path

from tests.harness import Deployment, run_kiosk


def test_a_cluster_on_sqlite_refuses_to_start_with_one_line(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path, extra='[cluster]\nnats_url = "nats://127.0.0.1:4222"\n')
    deployment.setup_as_copy()
    result = run_kiosk(
        ["server", "--config", str(deployment.config)], env=deployment.env(), check=False
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines == [
        "kiosk: cannot start the server: a cluster ([cluster] nats_url) needs PostgreSQL "
        "([database] url); SQLite serves one process only"
    ]

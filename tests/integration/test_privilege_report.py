"""``kiosk admin audit privilege-report`` on SQLite and PostgreSQL (issue 18, R13).

The log is written by the real appender: privileged calls peer to peer with
refused monitor attempts pass; one privileged call that had a monitor
attached fails the report, which names the call and the entry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine

from kiosk.audit.keys import load_signing_key
from kiosk.audit.log import AuditLog

DAY = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def report(url: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KIOSK_DATABASE__URL": url, "KIOSK_SERVER__DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "kiosk", "admin", "audit", "privilege-report", *args],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )


async def a_call(log: AuditLog, call: str, category: str, refused: int = 0,
                 attached: bool = False) -> None:
    subjects = {"call": call, "inmate": "i1", "contact": f"k-{call}"}
    await log.append("device:d1", "call.granted", subjects,
                     {"route": "p2p", "control": "none", "category": category})
    for _ in range(refused):
        await log.append("staff:s1", "monitor.refused", subjects,
                         {"kinds": ["audio"], "reason": "privileged_no_monitor"})
    if attached:
        await log.append("staff:s1", "monitor.attached", {**subjects, "monitor": "m1"},
                         {"kinds": ["audio"]})
    await log.append("system", "call.ended", {"call": call}, {"reason": "time_up"})


async def test_the_report_lists_privileged_calls_and_fails_on_a_monitor(
    engine: AsyncEngine, migrated_url: str, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    times = iter(DAY + timedelta(minutes=i) for i in range(1000))
    log = AuditLog(engine, load_signing_key(data / "pki"), clock=lambda: next(times))
    await a_call(log, "lawyer-1", "defence_counsel", refused=2)
    await a_call(log, "family-1", "personal")
    await a_call(log, "police-1", "police")
    await log.close()
    out = tmp_path / "receipts"
    done = report(migrated_url, data, "--from", "2026-03-02", "--to", "2026-03-02",
                  "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "granted from 2026-03-02T00:00:00+00:00 to 2026-03-03T00:00:00+00:00: 2." in done.stdout
    assert "lawyer-1  defence_counsel" in done.stdout
    assert "2 monitor attempts refused" in done.stdout
    assert "police-1  police" in done.stdout and "family-1" not in done.stdout
    assert sorted(p.name for p in out.iterdir()) == ["receipt-lawyer-1.json",
                                                     "receipt-police-1.json"]
    assert json.loads((out / "receipt-lawyer-1.json").read_text())["call"] == "lawyer-1"
    # Another day holds none of them.
    done = report(migrated_url, data, "--from", "2026-03-03", "--to", "2026-03-04")
    assert done.returncode == 0 and ": 0." in done.stdout

    await a_call(log, "lawyer-2", "defence_counsel", attached=True)
    await log.close()
    done = report(migrated_url, data, "--from", "2026-03-02", "--to", "2026-03-02")
    assert done.returncode == 3
    assert "lawyer-2" in done.stdout and "a monitor was attached" in done.stdout
    assert "proof FAILS" not in done.stdout  # the log holds it: that is the point
    assert "1 privileged calls had a bridge, control or a monitor" in done.stderr
    done = report(migrated_url, data, "--from", "2026-03-05", "--to", "2026-03-02")
    assert done.returncode == 1 and "--to must be after --from" in done.stderr

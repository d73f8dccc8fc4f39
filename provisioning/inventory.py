"""The tablets staff expect, by hardware serial: a small JSON file in the station's data dir.

Staff enter each serial (``kiosk-provision inventory add``) from the delivery
note before the tablet is plugged in; enrolment refuses any other serial.
After enrolment the record keeps the certificate serial and the server's
device id, so a second enrolment of the same tablet is refused unless
re-provisioning is asked for.

Writes are atomic (``kiosk.crypto.keys``) under an exclusive lock, so that several
enrolments at once (and a second station process) never lose an update.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from kiosk.crypto import keys
from kiosk.enrolment.station import InventoryEntry

FILE_NAME = "inventory.json"
# The serial becomes the certificate's subject: the CA's rule (kiosk.crypto.pki).
SERIAL_RE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class InventoryError(Exception):
    """An operator error: one line, shown as is."""


@dataclass(frozen=True, slots=True)
class Record:
    serial: str
    model: str = ""
    note: str = ""
    added_at: str = ""
    certificate_serial: str | None = None
    device_id: str | None = None
    enrolled_at: str | None = None

    def entry(self) -> InventoryEntry:
        return InventoryEntry(self.serial, self.model, self.certificate_serial)


class Inventory:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / FILE_NAME
        self._lock_path = data_dir / f".{FILE_NAME}.lock"

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Record]]:
        keys.ensure_private_dir(self.path.parent)
        with open(self._lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            records = self._read()
            before = dict(records)
            yield records
            if records != before:
                self._write(records)

    def _read(self) -> dict[str, Record]:
        try:
            raw: Any = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise InventoryError(f"cannot read the inventory {self.path}: {exc}") from exc
        if not isinstance(raw, dict) or not isinstance(raw.get("tablets"), list):
            raise InventoryError(f"{self.path} is not an inventory file")
        records = {}
        for item in raw["tablets"]:
            try:
                record = Record(**item)
            except TypeError as exc:
                raise InventoryError(f"{self.path}: bad record {item!r}") from exc
            records[record.serial] = record
        return records

    def _write(self, records: dict[str, Record]) -> None:
        data = {"tablets": [asdict(r) for r in sorted(records.values(), key=lambda r: r.serial)]}
        keys.write_secret(self.path, json.dumps(data, indent=2).encode() + b"\n")

    def add(self, serial: str, *, model: str = "", note: str = "", now: datetime) -> Record:
        if not SERIAL_RE.fullmatch(serial):
            raise InventoryError(
                f"serial {serial!r}: use 1-64 characters of A-Z a-z 0-9 . _ - "
                "(as printed on the case)"
            )
        with self._locked() as records:
            if serial in records:
                raise InventoryError(f"serial {serial} is already in the inventory")
            records[serial] = Record(serial, model, note, now.isoformat())
            return records[serial]

    def remove(self, serial: str) -> None:
        with self._locked() as records:
            if records.pop(serial, None) is None:
                raise InventoryError(f"serial {serial} is not in the inventory")

    def get(self, serial: str) -> Record | None:
        with self._locked() as records:
            return records.get(serial)

    def lookup(self, serial: str) -> InventoryEntry | None:
        """What the enrolment protocol asks (``kiosk.enrolment.station.Lookup``)."""
        record = self.get(serial)
        return None if record is None else record.entry()

    def list(self) -> list[Record]:
        with self._locked() as records:
            return sorted(records.values(), key=lambda r: r.serial)

    def mark_enrolled(
        self, serial: str, *, certificate_serial: str, device_id: str, now: datetime
    ) -> Record:
        with self._locked() as records:
            if serial not in records:
                raise InventoryError(f"serial {serial} is not in the inventory")
            records[serial] = replace(
                records[serial],
                certificate_serial=certificate_serial,
                device_id=device_id,
                enrolled_at=now.isoformat(),
            )
            return records[serial]

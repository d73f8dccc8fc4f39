"""The tablet's clock and the pinned grant key the agent loads before it starts."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

Clock = Callable[[], float]


def tablet_clock() -> float:
    """The agent's monotonic clock: CLOCK_BOOTTIME, which also counts time suspended.

    CLOCK_MONOTONIC (``time.monotonic``) stops while the machine sleeps: a
    tablet suspended mid-call would wake with its deadline still ahead by the
    time it slept. Both are immune to the wall clock being set.
    """
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class AgentError(Exception):
    """The agent cannot start (bad configuration, unreadable keys)."""


def load_grant_key(path: Path) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise AgentError(f"cannot read the grant public key {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise AgentError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise AgentError(f"{path} is not an Ed25519 public key")
    return key

"""The open-file limit a server needs for the tablets it is meant to hold.

Every tablet's link is a socket, and a socket is an open file. Under the
usual soft limit of 1024 (systemd's default for services, a login shell's
default) a server meant for thousands of tablets fails at about a thousand:
accept() fails, the listen queue overflows, the database cannot open a
connection (tablets get 503 "device lookup failed") and the event loop
spins on a listening socket it cannot accept from. So the server checks at
start: it raises its soft limit to the hard limit when that is needed and
allowed, and otherwise refuses to start with one line that says what to
change, rather than fail later under load.

``plan`` is the decision (pure); ``ensure`` applies it with ``resource``.
"""

from __future__ import annotations

import resource
from dataclasses import dataclass

# Files beside the tablets' links: the database's connections and files, the
# web listener's clients (staff and visitors), the bridge's media sockets,
# logs, the CA's files. Generous: an unused limit costs nothing.
HEADROOM = 1024


class OpenFilesError(Exception):
    """The process cannot hold what it is configured for (one line for the operator)."""


def needed(devices: int) -> int:
    """Open files for ``devices`` tablet links and everything else."""
    return devices + HEADROOM


@dataclass(frozen=True, slots=True)
class Plan:
    raise_to: int | None  # the soft limit to set, or None to leave it
    refusal: str | None  # why the server cannot start, or None


def plan(soft: int, hard: int, devices: int) -> Plan:
    """What to do about limits ``soft``/``hard`` (RLIM_INFINITY is -1) for ``devices``."""
    want = needed(devices)
    infinite = resource.RLIM_INFINITY
    if soft == infinite or soft >= want:
        return Plan(None, None)
    if hard == infinite or hard >= want:
        return Plan(hard if hard != infinite else want, None)
    return Plan(
        None,
        f"the open-file limit ({soft}, at most {hard}) cannot hold "
        f"server.device_capacity = {devices} tablets, which need {want}: "
        f"raise LimitNOFILE= in the unit (or ulimit -n), or lower device_capacity",
    )


def ensure(devices: int) -> int:
    """Raise the soft limit if needed; returns the limit now in force.

    Raises OpenFilesError (one line) if the hard limit is too low or the
    raise is refused.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    decision = plan(soft, hard, devices)
    if decision.refusal is not None:
        raise OpenFilesError(decision.refusal)
    if decision.raise_to is None:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (decision.raise_to, hard))
    except (OSError, ValueError) as exc:
        raise OpenFilesError(
            f"the open-file limit ({soft}) cannot hold server.device_capacity = {devices} "
            f"tablets and raising it to {decision.raise_to} was refused ({exc}): "
            f"set LimitNOFILE= in the unit (or ulimit -n)"
        ) from exc
    return decision.raise_to

"""Run a command under the seccomp filters a unit file asks systemd for.

    python -m tests.systemd_sandbox systemd/kiosk-agent.service -- CMD ARGS...

systemd cannot run as PID 1 on the test machines, but the parts of a unit's
sandbox that decide whether the *program* works there are seccomp filters,
and those can be installed by any process on itself. This installs, as
systemd 252 does (src/shared/seccomp-util.c, src/core/execute.c):

- ``SystemCallFilter=``: an allow list built from the unit's lines in order
  (groups expanded with ``systemd-analyze syscall-filter``; a ``~`` line
  removes), always with the ``@default`` set; anything else fails with
  ``SystemCallErrorNumber=`` (or the process is killed without it);
- ``MemoryDenyWriteExecute=yes``: ``mmap`` with write and execute at once,
  ``mprotect``/``pkey_mprotect`` adding execute, ``shmat`` with ``SHM_EXEC``
  fail with EPERM;
- ``RestrictAddressFamilies=``: ``socket()`` of any other family fails with
  EAFNOSUPPORT;
- ``NoNewPrivileges=yes`` (needed for the filters anyway),

then ``exec``s the command. File system, device, user and network
namespacing are not reproduced here; ``systemd-analyze`` checks those settings.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import mmap
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import seccomp

PR_SET_NO_NEW_PRIVS = 38
SHM_EXEC = 0o100000

FAMILIES = {
    "AF_UNIX": socket.AF_UNIX,
    "AF_INET": socket.AF_INET,
    "AF_INET6": socket.AF_INET6,
    "AF_NETLINK": socket.AF_NETLINK,
    "AF_PACKET": socket.AF_PACKET,
}


def unit_settings(path: Path) -> list[tuple[str, str]]:
    out = []
    section = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        if section == "Service":
            out.append((key.strip(), value.strip()))
    return out


@functools.cache
def expand(name: str) -> frozenset[str]:
    """A system call or ``@group`` as the set of system call names."""
    if not name.startswith("@"):
        return frozenset({name})
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        raise SystemExit("systemd-analyze is needed to expand system call groups")
    text = subprocess.run(
        [analyze, "syscall-filter", name], capture_output=True, text=True, check=True
    ).stdout
    names: set[str] = set()
    for raw in text.splitlines()[1:]:
        item = raw.strip()
        if not item or item.startswith("#"):
            continue
        names |= expand(item)
    return frozenset(names)


def allowed_syscalls(lines: Sequence[str]) -> frozenset[str] | None:
    """The allow list the unit's ``SystemCallFilter=`` lines give, or None (no filter)."""
    allow: set[str] | None = None
    for line in lines:
        if not line:
            allow = None
            continue
        invert = line.startswith("~")
        names: set[str] = set()
        for item in line.lstrip("~").split():
            names |= expand(item)
        if allow is None:
            if invert:
                raise SystemExit("a deny-list filter is not used by our units")
            allow = set(expand("@default"))
        if invert:
            allow -= names
        else:
            allow |= names
    if allow is None:
        return None
    # What systemd itself needs to start the program stays allowed (systemd.exec(5)).
    return frozenset(allow | {"execve", "exit", "exit_group", "getrlimit", "rt_sigreturn"})


def _errno(name: str) -> int:
    return int(getattr(errno, name)) if not name.isdigit() else int(name)


def install(unit: Path) -> None:
    settings = unit_settings(unit)
    values: dict[str, list[str]] = {}
    for key, value in settings:
        values.setdefault(key, []).append(value)

    libc = ctypes.CDLL(None, use_errno=True)
    if values.get("NoNewPrivileges", ["no"])[-1] == "yes" and libc.prctl(
        PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0
    ):
        raise OSError(ctypes.get_errno(), "PR_SET_NO_NEW_PRIVS")

    if values.get("MemoryDenyWriteExecute", ["no"])[-1] == "yes":
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        wx = mmap.PROT_WRITE | mmap.PROT_EXEC
        f.add_rule(seccomp.ERRNO(errno.EPERM), "mmap", seccomp.Arg(2, seccomp.MASKED_EQ, wx, wx))
        for name in ("mprotect", "pkey_mprotect"):
            f.add_rule(
                seccomp.ERRNO(errno.EPERM),
                name,
                seccomp.Arg(2, seccomp.MASKED_EQ, mmap.PROT_EXEC, mmap.PROT_EXEC),
            )
        shm_exec = seccomp.Arg(2, seccomp.MASKED_EQ, SHM_EXEC, SHM_EXEC)
        f.add_rule(seccomp.ERRNO(errno.EPERM), "shmat", shm_exec)
        f.load()

    families = values.get("RestrictAddressFamilies")
    if families:
        allowed = {FAMILIES[name] for line in families for name in line.split()}
        f = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        # socket() of any family not listed fails.
        for family in range(0, 64):
            if family not in allowed:
                f.add_rule(
                    seccomp.ERRNO(errno.EAFNOSUPPORT), "socket", seccomp.Arg(0, seccomp.EQ, family)
                )
        f.load()

    # Last: loading a filter is itself a system call the allow list may not contain.
    allow = allowed_syscalls(values.get("SystemCallFilter", []))
    if allow is not None:
        error = values.get("SystemCallErrorNumber", [""])[-1]
        default = seccomp.ERRNO(_errno(error)) if error else seccomp.KILL_PROCESS
        f = seccomp.SyscallFilter(defaction=default)
        for name in sorted(allow):
            try:
                f.add_rule(seccomp.ALLOW, name)
            except (RuntimeError, ValueError):
                continue  # not a system call of this architecture
        f.load()


def main(argv: Sequence[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: python -m tests.systemd_sandbox UNIT -- CMD [ARGS...]", file=sys.stderr)
        return 2
    install(Path(argv[0]))
    command = list(argv[2:])
    os.execvp(command[0], command)
    return 127  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

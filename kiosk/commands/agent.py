"""``kiosk agent --config FILE [--synthetic-media]``: the tablet agent."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Any

from kiosk.cli import CommandError
from kiosk.runtime import heap, sdnotify
from kiosk.runtime.config import AgentProgramSettings, ConfigError, load
from kiosk.runtime.logs import configure, get_logger


def register(sub: Any) -> None:
    p = sub.add_parser(
        "agent",
        help="run the tablet agent",
        description="Run the tablet agent: the mutual-TLS link to the server, calls under "
        "signed grants, and the kiosk page's API on loopback. Stops cleanly on SIGINT or "
        "SIGTERM.",
    )
    p.add_argument("--config", type=Path, default=None, help="TOML configuration file")
    p.add_argument(
        "--synthetic-media",
        action="store_true",
        help="use a moving test pattern and a 440 Hz tone instead of camera and microphone "
        "(also used whenever no device is configured)",
    )
    p.set_defaults(func=run_agent)


async def _run(settings: Any, synthetic: bool) -> None:
    from kiosk.device.agent import Agent

    agent = Agent(settings.agent, synthetic_media=synthetic)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await agent.start()
    heap.settle()
    sdnotify.ready(f"kiosk UI API on {settings.agent.ui_host}:{agent.ui_port}")
    # The watchdog catches a stuck event loop; a link down is normal (offline
    # calls still end on time) and does not withhold the ping.
    watchdog = sdnotify.Watchdog(health=lambda: agent.ui_port > 0)
    watchdog.start()
    try:
        await stop.wait()
    finally:
        await watchdog.stop()
        sdnotify.stopping()
        with contextlib.suppress(Exception):
            await agent.stop()


def run_agent(args: argparse.Namespace) -> int:
    try:
        settings = load(AgentProgramSettings, args.config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    configure(settings.log.level, json=settings.log.format == "json")
    from kiosk.device.grant_key import AgentError

    try:
        asyncio.run(_run(settings, args.synthetic_media))
    except AgentError as exc:
        raise CommandError(str(exc)) from exc
    except ValueError as exc:  # e.g. a UI host that is not loopback
        raise CommandError(str(exc)) from exc
    except OSError as exc:
        raise CommandError(f"cannot start the agent: {exc.strerror or exc}") from exc
    get_logger(__name__).info("agent exited")
    return 0

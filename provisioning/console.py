"""The station's console: one progress line per tablet, one question at a time."""

from __future__ import annotations

import asyncio
import shutil
import sys
from typing import TextIO


class Console:
    """One progress line per tablet, and one question at a time.

    On a terminal the lines are redrawn in place; otherwise (a log, a pipe)
    each update is a line of its own, prefixed with the tablet's tty.
    """

    def __init__(self, out: TextIO, answers: asyncio.StreamReader | None) -> None:
        self._out = out
        self._answers = answers
        self._lines: dict[str, str] = {}
        self._drawn = 0
        self._asking = asyncio.Lock()
        self._live = out.isatty()

    def progress(self, name: str, text: str) -> None:
        # Text from a tablet never drives the operator's terminal.
        text = "".join(c if c.isprintable() else "?" for c in text)
        self._lines[name] = text
        if not self._live:
            print(f"[{name}] {text}", file=self._out, flush=True)
        elif not self._asking.locked():
            self._redraw()

    def _redraw(self) -> None:
        if self._drawn:
            self._out.write(f"\x1b[{self._drawn}F")
        # One screen line each, or moving the cursor up would miscount.
        width = max(20, shutil.get_terminal_size().columns - 1)
        for name, text in self._lines.items():
            self._out.write(f"\x1b[2K{f'[{name}] {text}'[:width]}\n")
        self._drawn = len(self._lines)
        self._out.flush()

    async def ask(self, name: str, question: str) -> bool:
        async with self._asking:
            if self._answers is None:
                print(f"[{name}] {question} -> no operator input; refused", file=self._out)
                return False
            print(f"[{name}] {question} [y/N] ", end="", file=self._out, flush=True)
            line = await self._answers.readline()
            self._drawn = 0  # the prompt scrolled the block; draw it afresh below
            answer = line.decode(errors="replace").strip().lower()
            print(f"[{name}] answer: {answer or 'no'}", file=self._out, flush=True)
        if self._live:
            self._redraw()
        return answer in ("y", "yes")

    def say(self, text: str) -> None:
        print(text, file=self._out, flush=True)
        self._drawn = 0


async def stdin_reader() -> asyncio.StreamReader | None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    try:
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    except (ValueError, OSError):  # closed, or a regular file epoll cannot watch
        return None
    return reader

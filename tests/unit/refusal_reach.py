"""Which reason codes a staff API handler can give, found by reading the code (issue 17).

A refusal leaves a handler only as ``ApiError`` (anything else is a 500, a bug),
and ``ApiError`` is built only in kiosk/signalling/api/ (checked by the test). Its
reason is always written somewhere as ``Reason.X``: the server never makes a reason
from text on the way to a handler (checked too: no ``Reason(...)`` call is reachable).
So a handler can give ``X`` only if ``Reason.X`` is written in code reachable from it.

Reachability follows, from the handler's body (not its decorator, which is the
declaration under test):

* every name or attribute that is a function of ``kiosk`` (called, or handed on as a
  value: ``work.load(get_inmate, ...)``), through modules (``policy.decide_contact``),
  closures (live.py's ``calls``) and ``self``'s methods;
* methods called in kiosk/signalling/api/ on an object of unknown type, by name, on
  the two services handlers call through objects: the unit of work (``work.load``,
  ``work.check``) and the calls' runner (``calls().set_up``);
* the switchboard's event dispatch: ``self.feed(ev.SetUp(...))`` leads where
  ``Switchboard._dispatch`` sends a ``SetUp``, and nowhere else;
* module-level values named in the code: a ``Reason``, a ``Deny``, or a table of them
  (``NOT_JOINABLE``).

It over-approximates — a reason written on a path that does not refuse counts —
and never under-approximates within those rules.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FunctionType, ModuleType
from typing import Any

from kiosk.domain.policy import Deny
from kiosk.domain.reasons import Reason
from kiosk.domain.switchboard.board import Switchboard
from kiosk.signalling.api.work import Work
from kiosk.signalling.calls.runner import CallRunner

SERVICES: tuple[type, ...] = (Work, CallRunner)


class MadeFromText(AssertionError):
    """A ``Reason(...)`` call: a reason the reading cannot see."""


def _tree(fn: FunctionType) -> ast.FunctionDef | ast.AsyncFunctionDef:
    source = textwrap.dedent(inspect.getsource(fn))
    node = ast.parse(source).body[0]
    assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef), fn
    node.decorator_list = []
    return node


def _ours(value: Any) -> bool:
    return isinstance(value, FunctionType) and value.__module__.startswith("kiosk.")


def _reasons_in(value: Any) -> set[Reason]:
    if isinstance(value, Reason):
        return {value}
    if isinstance(value, Deny):
        return {value.reason}
    if isinstance(value, dict):  # a table *to* reasons (not MESSAGES, keyed by them)
        return {r for v in value.values() for r in _reasons_in(v)}
    if isinstance(value, tuple | list | set | frozenset):
        return {r for v in value for r in _reasons_in(v)}
    return set()


def _event_handlers() -> dict[str, ast.expr]:
    """``Switchboard._dispatch``: event class name -> the call it makes."""
    out: dict[str, ast.expr] = {}
    for case in ast.walk(_tree(Switchboard._dispatch)):  # type: ignore[arg-type]
        if isinstance(case, ast.match_case) and isinstance(case.pattern, ast.MatchClass):
            [ret] = [s for s in case.body if isinstance(s, ast.Return)]
            assert isinstance(ret.value, ast.Call)
            name = case.pattern.cls
            key = name.attr if isinstance(name, ast.Attribute) else ast.unparse(name)
            out[key] = ret.value.func
    return out


class Reach:
    """The reasons written in the code reachable from some functions."""

    def __init__(self) -> None:
        self.seen: set[tuple[FunctionType, type | None]] = set()
        self.dispatch = _event_handlers()

    def reasons(self, fn: FunctionType) -> set[Reason]:
        self.seen = set()
        return set(self._walk(fn, None))

    # --- one function -----------------------------------------------------------------

    def _walk(self, fn: FunctionType, owner: type | None) -> Iterator[Reason]:
        if (fn, owner) in self.seen:
            return
        self.seen.add((fn, owner))
        env = {**fn.__globals__, **inspect.getclosurevars(fn).nonlocals}
        if owner is None and "." in fn.__qualname__ and "<locals>" not in fn.__qualname__:
            owner = getattr(inspect.getmodule(fn), fn.__qualname__.split(".")[0], None)
        for node in ast.walk(_tree(fn)):
            yield from self._node(node, env, owner)

    def _node(self, node: ast.AST, env: dict[str, Any], owner: type | None) -> Iterator[Reason]:
        if isinstance(node, ast.Attribute) and ast.unparse(node.value) == "Reason":
            yield Reason[node.attr]
        elif isinstance(node, ast.Call) and self._value(node.func, env) is Reason:
            raise MadeFromText(ast.unparse(node))
        elif isinstance(node, ast.Call) and _feeds(node):
            event = node.args[0]
            assert isinstance(event, ast.Call), ast.unparse(node)
            name = event.func.attr if isinstance(event.func, ast.Attribute) else ""
            handler = self.dispatch[name or ast.unparse(event.func)]
            board_env = Switchboard._dispatch.__globals__
            yield from self._follow(self._value(handler, board_env, Switchboard), Switchboard)
        elif isinstance(node, ast.Call) and self._through_service(node, env, owner):
            for service in SERVICES:
                method = inspect.getattr_static(service, node.func.attr, None)  # type: ignore[attr-defined]
                yield from self._follow(method, service)
        if isinstance(node, ast.Name | ast.Attribute):
            value = self._value(node, env, owner)
            if value is not None:
                yield from _reasons_in(value)
                yield from self._follow(value, owner)

    def _through_service(self, node: ast.Call, env: dict[str, Any], owner: type | None) -> bool:
        """A method called on an object of unknown type in the handlers' package."""
        return (
            str(env.get("__name__", "")).startswith("kiosk.signalling.api")
            and isinstance(node.func, ast.Attribute)
            and self._value(node.func, env, owner) is None
        )

    def _follow(self, value: Any, owner: type | None) -> Iterator[Reason]:
        value = getattr(value, "__func__", value)  # a staticmethod or classmethod
        if value is FEED:
            return  # its events are followed where they are fed (above)
        if _ours(value):
            yield from self._walk(value, owner if "." in value.__qualname__ else None)

    def _value(self, node: ast.expr, env: dict[str, Any], owner: type | None = None) -> Any:
        """What a name or a dotted name is, where it can be known without running it."""
        if isinstance(node, ast.Name):
            return env.get(node.id)
        if isinstance(node, ast.Attribute):
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                return inspect.getattr_static(owner, node.attr, None) if owner else None
            base = self._value(node.value, env, owner)
            if isinstance(base, ModuleType | type):
                return inspect.getattr_static(base, node.attr, None)
        return None


FEED = CallRunner.feed


def _feeds(node: ast.Call) -> bool:
    """``self.feed(ev.X(...))`` in the runner: an event for the switchboard."""
    return (
        ast.unparse(node.func) == "self.feed"
        and len(node.args) == 1
        and isinstance(node.args[0], ast.Call)
    )


def api_error_sites(root: Path) -> Iterator[str]:
    """Every place outside kiosk/signalling/api/ that builds an ``ApiError``."""
    for path in sorted(root.rglob("*.py")):
        if (root / "signalling" / "api") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("ApiError"):
                yield f"{path}:{node.lineno}"


Finder = Callable[[FunctionType], set[Reason]]

"""The route table of the staff API and the one way a request is handled.

Each resource module declares its operations in an :class:`OperationTable`
(method, path, role action, request and response models, the refusals it can
give). The same table mounts the routes and generates the OpenAPI document,
so what is documented is what is checked. Another module (the call
switchboard's ``/calls`` operations) adds its own table the same way.

Every request goes through the same steps, in this order:

1. authenticate (session cookie or bearer token) -> 401 ``not_authenticated``
2. CSRF on state changes made with a session cookie -> 403 ``csrf_failed``
3. role (``kiosk.domain.access``) -> 403 ``forbidden_role``
4. path, query and body validated by the pydantic models -> 400 ``invalid_request``
   (404 ``not_found`` for an id that cannot exist)
5. the handler, through its unit of work (:mod:`.work`): loads or 404, asks the
   pure policy, writes with its audit entry in one transaction; a policy
   refusal is raised as :class:`ApiError` and rolls the transaction back.

Status of a refusal (``STATUS``): 422 when the request contradicts a rule
whatever the state of things (a window that ends before it starts, control
on a privileged contact, missing grounds, monitoring what cannot be
monitored); 409 when the current state refuses it (contact status, limits,
calendar, capacity, quotas, live calls). Both carry the reason code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from kiosk.domain.access import Action, authorize
from kiosk.domain.policy import Deny
from kiosk.domain.reasons import MESSAGES, Reason
from kiosk.runtime.logs import get_logger
from kiosk.signalling import auth
from kiosk.signalling.calls.writes import append_audit
from kiosk.signalling.context import CONTEXT, ServerContext
from kiosk.signalling.schemas import Query, Request

log = get_logger(__name__)

API_PREFIX = "/api/v1"
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
MAX_ID_LENGTH = 36
RECORDS_REFUSALS = "records_refusals"  # a handler attribute: it audits its own refusals

STATUS: dict[Reason, int] = {
    Reason.INVALID_REQUEST: 400,
    Reason.NOT_AUTHENTICATED: 401,
    Reason.FORBIDDEN_ROLE: 403,
    Reason.CSRF_FAILED: 403,
    Reason.NOT_FOUND: 404,
    Reason.WRONG_PASSWORD: 403,
    Reason.BOOKING_NOT_FOUND: 404,
    Reason.PAYLOAD_TOO_LARGE: 413,
    Reason.RATE_LIMITED: 429,
    Reason.LOGIN_DELAYED: 429,
    Reason.LOGIN_BUDGET_EXHAUSTED: 429,
    Reason.INTERNAL_ERROR: 500,
    # The request itself contradicts a rule, whatever the state.
    Reason.WINDOW_INVALID: 422,
    Reason.PRIVILEGED_NO_CONTROL: 422,
    Reason.CATEGORY_NOT_CONTROLLABLE: 422,
    Reason.GROUNDS_REQUIRED: 422,
    Reason.PRIVILEGED_NO_MONITOR: 422,
    Reason.NOT_CONTROLLED: 422,
    Reason.MEDIA_KIND_FORBIDDEN: 422,
    Reason.WITNESS_UNKNOWN: 422,
    Reason.COSIGNATURE_INVALID: 422,
    Reason.PASSWORD_TOO_SHORT: 422,
}
REFUSAL_DEFAULT_STATUS = 409  # everything else the policy refuses: the state says no


def status_for(reason: Reason) -> int:
    return STATUS.get(reason, REFUSAL_DEFAULT_STATUS)


class ApiError(Exception):
    """A refusal with its reason code; the error middleware renders it."""

    def __init__(self, reason: Reason, message: str = "", status: int | None = None,
                 audited: bool = False, headers: Mapping[str, str] | None = None):
        super().__init__(message or MESSAGES[reason])
        self.reason = reason
        self.message = message or MESSAGES[reason]
        self.status = status if status is not None else status_for(reason)
        self.audited = audited  # already in the audit chain: not recorded twice
        self.headers = dict(headers or {})  # e.g. Retry-After


def refuse(verdict: Deny) -> ApiError:
    """The API's answer to a policy refusal."""
    return ApiError(verdict.reason, verdict.message)


def not_found(what: str, reason: Reason = Reason.NOT_FOUND) -> ApiError:
    return ApiError(reason, f"There is no such {what}.")


def error_body(reason: Reason, message: str) -> dict[str, Any]:
    return {"error": {"code": reason.value, "message": message}}


def validation_message(exc: ValidationError, where: str) -> str:
    """``body.start: Input should have timezone info`` — the field, then what is wrong."""
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in (where, *first["loc"]))
    return f"{loc}: {first['msg']}"


B = TypeVar("B", bound=BaseModel)


@dataclass
class ApiRequest:
    """What a handler gets: the validated request and who made it."""

    http: web.Request
    ctx: ServerContext
    principal: auth.Principal | None
    params: Mapping[str, str]
    body: BaseModel | None
    query: BaseModel | None
    now: datetime

    @property
    def staff(self) -> auth.Principal:
        assert self.principal is not None
        return self.principal

    def body_as(self, model: type[B]) -> B:
        assert isinstance(self.body, model)
        return self.body

    def query_as(self, model: type[B]) -> B:
        assert isinstance(self.query, model)
        return self.query


@dataclass(frozen=True)
class Reply:
    """A response other than the operation's usual status (or with extra headers)."""

    model: BaseModel
    status: int = 200
    cookies: Sequence[Callable[[web.StreamResponse], None]] = ()


Handler = Callable[[ApiRequest], Awaitable[BaseModel | Reply]]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # under API_PREFIX, with {name} parameters
    handler: Handler
    action: Action | None  # None: open to anybody (login, the OpenAPI document)
    summary: str
    response: type[BaseModel]
    status: int = 200
    body: type[Request] | None = None
    query: type[Query] | None = None
    refusals: tuple[Reason, ...] = ()  # policy refusals this operation can give
    tag: str = ""
    extra_statuses: tuple[int, ...] = ()
    description: str = ""
    media_type: str = "application/json"  # text/plain: the response is a RootModel[str]
    audit_refusals: str = ""  # the audit action recording every refusal (R13, issue 12)

    @property
    def path_params(self) -> list[str]:
        return re.findall(r"{(\w+)}", self.path)

    @property
    def operation_id(self) -> str:
        return self.handler.__name__

    def error_statuses(self) -> dict[int, list[Reason]]:
        """Every error status this operation can answer with, and the codes behind each."""
        out: dict[int, list[Reason]] = {}

        def add(reason: Reason) -> None:
            out.setdefault(status_for(reason), [])
            if reason not in out[status_for(reason)]:
                out[status_for(reason)].append(reason)

        if self.body or self.query or self.path_params:
            add(Reason.INVALID_REQUEST)
        if self.body:
            add(Reason.PAYLOAD_TOO_LARGE)
        if self.action is not None:
            add(Reason.NOT_AUTHENTICATED)
            add(Reason.FORBIDDEN_ROLE)
            if self.method in STATE_CHANGING:
                add(Reason.CSRF_FAILED)
        if self.path_params:
            add(Reason.NOT_FOUND)
        for reason in self.refusals:
            add(reason)
        for status in self.extra_statuses:
            out.setdefault(status, [])
        return dict(sorted(out.items()))


@dataclass
class OperationTable:
    """A resource module's operations, declared with :meth:`route`."""

    tag: str
    operations: list[Operation] = field(default_factory=list)

    def route(
        self,
        method: str,
        path: str,
        action: Action | None,
        *,
        summary: str,
        response: type[BaseModel],
        status: int = 200,
        body: type[Request] | None = None,
        query: type[Query] | None = None,
        refusals: Iterable[Reason] = (),
        extra_statuses: Iterable[int] = (),
        media_type: str = "application/json",
        audit_refusals: str = "",
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    handler=handler,
                    action=action,
                    summary=summary,
                    response=response,
                    status=status,
                    body=body,
                    query=query,
                    refusals=tuple(refusals),
                    tag=self.tag,
                    extra_statuses=tuple(extra_statuses),
                    description=(handler.__doc__ or "").strip(),
                    media_type=media_type,
                    audit_refusals=audit_refusals,
                )
            )
            return handler

        return register


async def authenticate(request: web.Request, ctx: ServerContext, now: datetime) -> auth.Principal:
    header = request.headers.get("Authorization")
    async with ctx.engine.connect() as conn:
        if header is not None:
            scheme, _, token = header.partition(" ")
            if scheme.lower() != "bearer":
                raise ApiError(Reason.NOT_AUTHENTICATED, "Use a bearer token or log in.")
            principal = await auth.bearer_principal(conn, token.strip(), now)
        else:
            cookie = request.cookies.get(auth.SESSION_COOKIE, "")
            principal = await auth.session_principal(conn, cookie, now) if cookie else None
    if principal is None:
        raise ApiError(Reason.NOT_AUTHENTICATED)
    return principal


def _has_nul(value: Any) -> bool:
    """NUL cannot be stored in PostgreSQL text and means nothing in a name or a note."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _parse_query(op: Operation, request: web.Request) -> BaseModel | None:
    if op.query is None:
        if request.query:
            raise ApiError(Reason.INVALID_REQUEST, "query: this operation takes no parameters")
        return None
    values: dict[str, str] = {}
    for key, value in request.query.items():
        if _has_nul(key) or _has_nul(value):
            raise ApiError(Reason.INVALID_REQUEST, f"query.{key}: NUL characters are not allowed")
        if key in values:
            raise ApiError(Reason.INVALID_REQUEST, f"query.{key}: given more than once")
        values[key] = value
    try:
        return op.query.model_validate(values)
    except ValidationError as exc:
        raise ApiError(Reason.INVALID_REQUEST, validation_message(exc, "query")) from None


async def _parse_body(op: Operation, request: web.Request) -> BaseModel | None:
    try:
        raw = await request.read()  # aiohttp refuses more than client_max_size
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(Reason.PAYLOAD_TOO_LARGE) from None  # an audited refusal, too
    if op.body is None:
        if raw.strip():
            raise ApiError(Reason.INVALID_REQUEST, "body: this operation takes no body")
        return None
    if not raw.strip():
        raise ApiError(Reason.INVALID_REQUEST, "body: a JSON object is required")
    try:
        body = op.body.model_validate_json(raw)
    except ValidationError as exc:
        raise ApiError(Reason.INVALID_REQUEST, validation_message(exc, "body")) from None
    if _has_nul(body.model_dump()):
        raise ApiError(Reason.INVALID_REQUEST, "body: NUL characters are not allowed")
    return body


def make_handler(op: Operation) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handle(request: web.Request) -> web.StreamResponse:
        ctx = request.app[CONTEXT]
        now = ctx.clock()
        principal: auth.Principal | None = None
        if op.action is not None:
            principal = await authenticate(request, ctx, now)
            if request.method in STATE_CHANGING and not auth.csrf_ok(
                principal, request.headers.get(auth.CSRF_HEADER)
            ):
                raise ApiError(Reason.CSRF_FAILED)
            verdict = authorize(principal.role, op.action)
            if isinstance(verdict, Deny):
                log.info("request refused for role", staff=principal.staff_id,
                         action=op.action.value)
                raise refuse(verdict)
        params = dict(request.match_info)
        for name in op.path_params:
            value = params.get(name, "")
            if len(value) > MAX_ID_LENGTH or _has_nul(value):
                raise ApiError(Reason.NOT_FOUND)
        query = _parse_query(op, request)
        body = await _parse_body(op, request)
        api_request = ApiRequest(http=request, ctx=ctx, principal=principal, params=params,
                                 body=body, query=query, now=now)
        result = await op.handler(api_request)
        reply = result if isinstance(result, Reply) else Reply(result, op.status)
        response: web.Response
        if op.media_type == "application/json":
            response = web.json_response(reply.model.model_dump(mode="json"), status=reply.status)
        else:
            text = reply.model.model_dump(mode="json")
            assert isinstance(text, str), "a text operation answers with a RootModel[str]"
            response = web.Response(
                text=text, status=reply.status, content_type=op.media_type, charset="utf-8"
            )
        for set_cookie in reply.cookies:
            set_cookie(response)
        return response

    handle.__name__ = op.operation_id
    return _recording_refusals(op, handle) if op.audit_refusals else handle


def _recording_refusals(
    op: Operation, handle: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """A refused attempt is recorded, whoever made it and whatever refused it (role, CSRF,
    validation, the rules); a 401 names nobody."""

    async def recorded(request: web.Request) -> web.StreamResponse:
        try:
            return await handle(request)
        except ApiError as exc:
            if exc.audited or exc.reason is Reason.NOT_AUTHENTICATED:
                raise
            ctx = request.app[CONTEXT]
            subjects = {n.removesuffix("_id"): request.match_info[n] for n in op.path_params}
            details = {"reason": exc.reason.value, "operation": op.operation_id}
            try:
                staff = (await authenticate(request, ctx, ctx.clock())).staff_id
                await append_audit(ctx, f"staff:{staff}", op.audit_refusals, subjects, details)
            except Exception:
                log.exception("refused request not recorded", operation=op.operation_id)
            raise

    recorded.__name__ = op.operation_id
    setattr(recorded, RECORDS_REFUSALS, True)  # the body limit leaves its refusal to it
    return recorded


def mount(app: web.Application, operations: Iterable[Operation]) -> None:
    for op in operations:
        app.router.add_route(op.method, API_PREFIX + op.path, make_handler(op))

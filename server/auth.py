"""Who is calling and what they may touch: built-in API keys, or the project's own ``langgraph_sdk.Auth``.

Built in (no ``auth.path`` in ``langgraph.json``): keys from ``Settings.api_keys`` map to user ids, sent as
``Authorization: Bearer <key>`` or ``x-api-key: <key>`` and compared in constant time; with no keys, one
local user. Permissions come from ``Settings.user_permissions``.

Custom (``auth.path``, as the Agent Server documents it): ``@auth.authenticate`` gets the request's
``authorization``, ``headers``, ``path``, ``method``, ``query_params``, ``path_params`` or ``request``
and returns the caller (a string, a ``MinimalUserDict`` or an object with ``identity``); its
``Auth.exceptions.HTTPException`` becomes that status. ``@auth.on…`` handlers are asked through
``Caller.authorize`` for each (resource, action): ``False`` is a 403, a dict is a filter on the object's
metadata, and a handler may change ``value`` (metadata to stamp on a created thread, a store namespace).
Either way the caller's ``identity`` owns their threads (``loom.threads``), and nothing in a request
body can change it.
"""

from __future__ import annotations

import hmac
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Protocol, TypeVar

from fastapi import Depends, Request
from langgraph_sdk import Auth
from starlette.datastructures import QueryParams

from loom.settings import Settings
from server.errors import ApiError

LOCAL_USER = "demo"
Filters = dict[str, Any]


@dataclass(frozen=True)
class User:
    """The authenticated user as ``@auth.on`` handlers see ``ctx.user`` (the SDK's ``BaseUser``)."""

    identity: str
    display_name: str
    permissions: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    is_authenticated: bool = True

    def dict(self) -> dict[str, Any]:
        """The user as graphs get it in ``config["configurable"]["langgraph_auth_user"]``."""
        fields = {"identity": self.identity, "display_name": self.display_name, "is_authenticated": True}
        return {**self.extra, **fields, "permissions": list(self.permissions)}

    def __getitem__(self, key: str) -> Any:
        return self.dict()[key]

    def __contains__(self, key: object) -> bool:
        return key in self.dict()

    def __iter__(self) -> Iterator[str]:
        return iter(self.dict())


@dataclass(frozen=True)
class Caller:
    user: User
    handlers: Auth | None = None
    """The project's ``Auth`` object; None in built-in mode, where every action is allowed."""

    @property
    def identity(self) -> str:
        return self.user.identity

    async def authorize(self, resource: str, action: str, value: dict[str, Any]) -> Filters:
        """Ask the project's handler for (resource, action): the filters to apply ({} for none); 403 if refused.

        ``value`` is the handler's to change: callers read it back (metadata, namespace) afterwards.
        """
        handler = _handler(self.handlers, resource, action) if self.handlers else None
        if handler is None:
            return {}
        context = Auth.types.AuthContext(
            permissions=list(self.user.permissions),
            user=self.user,
            resource=resource,  # type: ignore[arg-type]
            action=action,  # type: ignore[arg-type]
        )
        try:
            result = await handler(ctx=context, value=value)
        except Auth.exceptions.HTTPException as exc:
            raise ApiError(exc.status_code, _code(exc.status_code), str(exc.detail)) from exc
        except AssertionError as exc:
            raise ApiError(403, "forbidden", str(exc) or "forbidden") from exc
        if result is False:
            raise ApiError(403, "forbidden", f"not allowed to {action} {resource}")
        return result if isinstance(result, dict) else {}


def _handler(auth: Auth, resource: str, action: str) -> Any:
    """The most specific handler, as langgraph-api picks it: (resource, action), (resource, *), (*, action), global."""
    for key in ((resource, action), (resource, "*"), ("*", action), ("*", "*")):
        if key in auth._handlers:
            return auth._handlers[key][-1]
    return auth._global_handlers[-1] if auth._global_handlers else None


class HasMetadata(Protocol):
    @property
    def metadata_(self) -> dict[str, Any]: ...


Row = TypeVar("Row", bound=HasMetadata)


def metadata_match(rows: Iterable[Row], metadata: dict[str, Any] | None, filters: Filters) -> list[Row]:
    """The rows with every asked metadata pair that pass the project's auth filter (as threads, assistants and
    crons are searched); JSON filtering in Python keeps SQLite and PostgreSQL identical."""
    wanted = (metadata or {}).items()
    return [r for r in rows if all(r.metadata_.get(k) == v for k, v in wanted) and matches(r.metadata_, filters)]


def matches(metadata: Mapping[str, Any], filters: Filters) -> bool:
    """Whether an object's metadata passes a handler's filter (``value``, ``$eq``, ``$contains``, ``$or``, ``$and``)."""
    for key, expected in filters.items():
        if key == "$or" and not any(matches(metadata, group) for group in expected):
            return False
        if key == "$and" and not all(matches(metadata, group) for group in expected):
            return False
        if key not in ("$or", "$and") and not _matches_one(metadata.get(key), expected):
            return False
    return True


def _matches_one(actual: Any, expected: Any) -> bool:
    if isinstance(expected, dict) and len(expected) == 1 and next(iter(expected)) in ("$eq", "$contains"):
        operator, operand = next(iter(expected.items()))
        if operator == "$contains":
            return isinstance(actual, list | str) and operand in actual
        return bool(actual == operand)
    return bool(actual == expected)


def _code(status: int) -> str:
    return {401: "unauthorized", 403: "forbidden", 404: "not_found"}.get(status, "auth_error")


# built-in API keys -------------------------------------------------------------------------------
def user_for_key(settings: Settings, key: str | None) -> str:
    if not settings.api_keys:
        return LOCAL_USER
    if key:
        for user, secret in settings.api_keys.items():
            if hmac.compare_digest(secret.get_secret_value().encode(), key.encode()):
                return user
    raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer … or x-api-key)")


def _built_in(request: Request) -> User:
    settings: Settings = request.app.state.settings
    identity = user_for_key(settings, presented_key(request))
    return User(identity, identity, tuple(settings.granted(identity)))


def presented_key(request: Request) -> str | None:
    """The API key the request carries, as ``Authorization: Bearer`` or ``x-api-key``.

    Two different keys are a 400: serving the request as either user would be a guess.
    """
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    api_key = request.headers.get("x-api-key")
    if bearer and api_key and not hmac.compare_digest(bearer.encode(), api_key.encode()):
        raise ApiError(400, "ambiguous_credentials", "authorization, x-api-key: two different keys were sent; send one")
    return bearer or api_key


# custom auth -------------------------------------------------------------------------------------
async def _custom(auth: Auth, request: Request) -> User:
    authenticate = auth._authenticate_handler
    if authenticate is None:
        raise ApiError(401, "unauthorized", "the project's auth has no @auth.authenticate handler")
    try:
        returned = await authenticate(**_arguments(authenticate, request))
    except Auth.exceptions.HTTPException as exc:
        raise ApiError(exc.status_code, _code(exc.status_code), str(exc.detail)) from exc
    return user_of(returned)


def _arguments(authenticate: Any, request: Request) -> dict[str, Any]:
    """The parameters the handler names, shaped as langgraph-api passes them (headers as bytes)."""
    available: dict[str, Callable[[], Any]] = {
        "request": lambda: request,
        "authorization": lambda: request.headers.get("authorization"),
        "headers": lambda: dict(request.scope.get("headers", [])),
        "path": lambda: request.url.path,
        "method": lambda: request.method,
        "query_params": lambda: QueryParams(request.scope.get("query_string", b"")),
        "path_params": lambda: dict(request.path_params),
        "scopes": lambda: [],
        "scope": lambda: request.scope,
        "user": lambda: None,
    }
    names = inspect.signature(authenticate).parameters
    return {name: available[name]() for name in names if name in available}


def user_of(returned: Any) -> User:
    """A string, a ``MinimalUserDict`` (or any mapping with ``identity``), or an object with ``identity``."""
    if isinstance(returned, str):
        return User(returned, returned)
    data = dict(returned) if isinstance(returned, Mapping) else {**getattr(returned, "__dict__", {})}
    identity = data.get("identity", getattr(returned, "identity", None))
    if not isinstance(identity, str) or not identity:
        raise ApiError(500, "auth_error", "the auth handler returned a user without a string 'identity'")
    permissions = data.get("permissions", getattr(returned, "permissions", ()))
    extra = {k: v for k, v in data.items() if k not in ("identity", "display_name", "permissions")}
    display = data.get("display_name", getattr(returned, "display_name", identity))
    return User(identity, str(display), tuple(str(p) for p in _sequence(permissions)), extra)


def _sequence(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list | tuple) else ()


# dependencies ------------------------------------------------------------------------------------
async def current_caller(request: Request) -> Caller:
    """The caller, authenticated once per request (every dependency that asks gets the same one)."""
    cached: Caller | None = getattr(request.state, "caller", None)
    if cached is not None:
        return cached
    auth: Auth | None = getattr(request.app.state, "auth", None)
    user = await _custom(auth, request) if auth is not None else _built_in(request)
    caller = Caller(user, auth)
    request.state.caller = caller
    return caller


async def current_user(request: Request) -> str:
    """The caller's identity; every thread and run is scoped to it."""
    return (await current_caller(request)).identity


CurrentCaller = Annotated[Caller, Depends(current_caller)]
CurrentUser = Annotated[str, Depends(current_user)]

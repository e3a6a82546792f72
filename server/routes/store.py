"""``/store``: LangGraph's key-value store (long-term memory), as ``langgraph_sdk``'s ``client.store`` calls it.

Every call goes through the caller's ``ScopedStore`` (``server.store_scope``), the same view a graph gets
as ``runtime.store``: a caller reads and lists only their own items, and sees their namespaces exactly as
they (or their graphs) wrote them.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Response
from langgraph.store.base import NOT_PROVIDED
from langgraph.store.base import Item as StoredItem
from pydantic import BeforeValidator, Field, StrictBool, StringConstraints, field_validator

from server.auth import Caller, CurrentCaller
from server.deps import Loom
from server.errors import ApiError
from server.responses import Item, ItemList, Namespaces
from server.schemas import MAX_OFFSET, JsonInt, Strict, json_integer
from server.store_scope import ScopedStore

router = APIRouter(prefix="/store", tags=["store"])

Label = Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^.\x00]+$")]
"""One namespace label; periods separate labels in ``GET /store/items?namespace=a.b``, so none inside (nor NUL,
which the stores refuse)."""
FILTER_KEY = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
"""What LangGraph's SQL stores accept as a filter key: a dotted path of plain names (they build JSON paths
from it, and an empty segment is a SQL error)."""
NAMESPACE_QUERY = r"^[^\x00]*[^.\x00][^\x00]*$"
"""At least one label, and no NUL."""


class PutItem(Strict):
    namespace: list[Label] = Field(min_length=1, max_length=20)
    key: str = Field(min_length=1, max_length=1000)
    value: dict[str, Any]
    index: Literal[False] | list[Annotated[str, StringConstraints(min_length=1)]] | None = Field(
        default=None,
        description="Fields to embed for semantic search (null: the index's own fields; false: none). "
        "Needs store.index in langgraph.json.",
    )
    ttl: float | None = Field(
        default=None, gt=0, le=100_000_000, description="Minutes to expiry; unset: store.ttl's default_ttl."
    )


class DeleteItem(Strict):
    namespace: list[Label] = Field(min_length=1, max_length=20)
    key: str = Field(min_length=1, max_length=1000)


FILTER_OPERATORS = frozenset({"$eq", "$ne", "$gt", "$gte", "$lt", "$lte"})


class SearchItems(Strict):
    namespace_prefix: list[Label] = Field(default_factory=list, max_length=20)
    filter: dict[str, Any] | None = Field(
        default=None,
        description="Field → value, or field → {operator: value} with $eq $ne $gt $gte $lt $lte.",
        json_schema_extra={"propertyNames": {"pattern": FILTER_KEY}},
    )
    limit: JsonInt = Field(default=10, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)
    query: str | None = Field(
        default=None,
        max_length=10_000,
        description="Natural-language query ranked by similarity; needs store.index in langgraph.json (else 422).",
    )
    refresh_ttl: StrictBool | None = None

    @field_validator("filter")
    @classmethod
    def known_operators(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """The stores raise on an unknown operator mid-query; name it here instead."""
        for field, condition in (value or {}).items():
            if not re.match(FILTER_KEY, field):
                raise ValueError(f"{field!r}: a filter key is names of letters, digits, '_' and '-' joined by '.'")
            if isinstance(condition, dict) and any(key.startswith("$") for key in condition):
                unknown = sorted(set(condition) - FILTER_OPERATORS)
                if unknown:
                    raise ValueError(f"{field}: unknown operator {unknown[0]!r}; use one of {sorted(FILTER_OPERATORS)}")
        return value


class ListNamespaces(Strict):
    prefix: list[Label] | None = None
    suffix: list[Label] | None = None
    max_depth: Annotated[int, Field(ge=1, le=20), BeforeValidator(json_integer)] | None = None
    limit: JsonInt = Field(default=100, ge=1, le=1000)
    offset: JsonInt = Field(default=0, ge=0, le=MAX_OFFSET)


async def caller_store(loom: Loom, caller: CurrentCaller) -> ScopedStore:
    return ScopedStore(loom.store, caller.identity)


Store = Annotated[ScopedStore, Depends(caller_store)]


async def authorized(caller: Caller, action: str, namespace: list[str], **asked: Any) -> tuple[str, ...]:
    """The namespace after a project's ``@auth.on.store`` handler has allowed the action (False is a 403) and
    perhaps rewritten it, as langgraph-api lets it; the caller's own scope is added by their ``Store``."""
    value = {"namespace": tuple(namespace), **asked}
    await caller.authorize("store", action, value)
    return tuple(value["namespace"] or ())


@router.put("/items", status_code=204)
async def put_item(body: PutItem, store: Store, caller: CurrentCaller) -> Response:
    """Stores ``value`` under ``namespace`` and ``key`` in the caller's store (replacing an item there), embedded
    for semantic search per ``index``, expiring after ``ttl`` minutes. 204; 422 for a ``ttl`` the store cannot
    keep or an ``index`` without ``store.index``; 403 if the project's auth refuses."""
    if body.ttl is not None and not store.supports_ttl:
        raise ApiError(422, "ttl_unsupported", "ttl: this store keeps items until they are deleted")
    if body.index and store.index_config is None:
        raise ApiError(422, "semantic_search_unavailable", "index: no embedding index is configured (store.index)")
    ttl = NOT_PROVIDED if body.ttl is None else body.ttl  # minutes; unset: the store's default_ttl
    namespace = await authorized(caller, "put", body.namespace, key=body.key, value=body.value, index=body.index)
    await store.aput(namespace, body.key, body.value, index=body.index, ttl=ttl)
    return Response(status_code=204)


@router.get("/items")
async def get_item(
    store: Store,
    caller: CurrentCaller,
    key: Annotated[str, Query(min_length=1)],
    namespace: Annotated[
        str, Query(pattern=NAMESPACE_QUERY, description="Labels joined by periods, e.g. memories.profile")
    ],
    refresh_ttl: bool | None = None,
) -> Item | None:
    """The caller's item at ``namespace`` (labels joined by periods) and ``key``; ``refresh_ttl`` restarts its
    expiry. A missing item is ``null`` with 200, as langgraph-api answers (the SDK's ``get_item`` returns None)."""
    labels = [label for label in namespace.split(".") if label]  # the pattern guarantees at least one
    item = await store.aget(await authorized(caller, "get", labels, key=key), key, refresh_ttl=refresh_ttl)
    return None if item is None else _item(item)


@router.delete("/items", status_code=204)
async def delete_item(body: DeleteItem, store: Store, caller: CurrentCaller) -> Response:
    """Deletes the caller's item at ``namespace`` and ``key``; 204, also when there was none."""
    await store.adelete(await authorized(caller, "delete", body.namespace, key=body.key), body.key)
    return Response(status_code=204)


@router.post("/items/search")
async def search_items(body: SearchItems, store: Store, caller: CurrentCaller) -> ItemList:
    """The caller's items under ``namespace_prefix`` matching ``filter``, ranked by similarity to ``query``
    when given (needs ``store.index``, else 422), paged by ``limit`` and ``offset``: ``{items}``."""
    if body.query and store.index_config is None:  # the store would ignore it and return everything: refuse
        raise ApiError(422, "semantic_search_unavailable", "query: no embedding index is configured; use filter")
    asked = {"query": body.query, "filter": body.filter, "limit": body.limit, "offset": body.offset}
    prefix = await authorized(caller, "search", body.namespace_prefix, **asked)
    try:
        items = await store.asearch(
            prefix,
            query=body.query or None,
            filter=body.filter,
            limit=body.limit,
            offset=body.offset,
            refresh_ttl=body.refresh_ttl,
        )
    except ValueError as exc:  # e.g. a filter key the store cannot address
        raise ApiError(422, "invalid_filter", f"filter: {exc}") from exc
    return {"items": [_item(item) for item in items]}


@router.post("/namespaces")
async def list_namespaces(body: ListNamespaces, store: Store, caller: CurrentCaller) -> Namespaces:
    """The caller's namespaces with this prefix and suffix, cut at ``max_depth`` labels, paged:
    ``{namespaces}``."""
    asked = {"suffix": body.suffix, "max_depth": body.max_depth, "limit": body.limit, "offset": body.offset}
    prefix = await authorized(caller, "list_namespaces", body.prefix or [], **asked)
    namespaces = await store.alist_namespaces(
        prefix=prefix or None,
        suffix=tuple(body.suffix) if body.suffix else None,
        max_depth=body.max_depth,
        limit=body.limit,
        offset=body.offset,
    )
    return {"namespaces": [list(namespace) for namespace in namespaces]}


def _item(item: StoredItem) -> Item:
    """LangGraph's own view of an item (a search's has ``score``), typed."""
    return cast(Item, item.dict())

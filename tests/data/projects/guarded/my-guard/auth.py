"""A project's own auth, written as the Agent Server's custom-auth guide writes it; no Loom imports."""

from typing import Any

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, Auth.types.MinimalUserDict] = {
    "token-a": {"identity": "user-a", "display_name": "Ada", "permissions": ["read", "write"]},
    "token-b": {"identity": "user-b", "permissions": ["read"]},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown or missing bearer token")
    return USERS[token]


@auth.on
async def owner_only(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Auth.types.FilterType:
    """Stamp the owner on whatever is created; let each user see only what carries their name."""
    metadata = value.setdefault("metadata", {})
    if isinstance(metadata, dict):
        metadata["owner"] = ctx.user.identity
    return {"owner": ctx.user.identity}


@auth.on.threads.delete
async def only_admins_delete(ctx: Auth.types.AuthContext, value: Auth.types.on.threads.delete.value) -> bool:
    return "admin" in ctx.permissions


@auth.on.assistants
async def assistants_for_writers(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> Auth.types.FilterType:
    """Writers see the graphs' assistants; others see none."""
    return {"created_by": "system"} if "write" in ctx.permissions else {"created_by": "nobody"}


@auth.on.store
async def own_namespace(ctx: Auth.types.AuthContext, value: dict[str, Any]) -> None:
    value["namespace"] = (ctx.user.identity, *(value["namespace"] or ()))

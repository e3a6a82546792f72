"""Who is calling: API keys map to user ids; with no keys configured, one local user.

Keys come from ``Settings.api_keys`` and are sent as ``Authorization: Bearer <key>`` or
``x-api-key: <key>``. Comparison is constant-time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request

from loom.settings import Settings
from server.errors import ApiError

LOCAL_USER = "demo"


def user_for_key(settings: Settings, key: str | None) -> str:
    if not settings.api_keys:
        return LOCAL_USER
    if key:
        for user, secret in settings.api_keys.items():
            if hmac.compare_digest(secret.get_secret_value().encode(), key.encode()):
                return user
    raise ApiError(401, "unauthorized", "a valid API key is required (Authorization: Bearer … or x-api-key)")


def current_user(request: Request) -> str:
    """The caller's user id; every thread and run is scoped to it."""
    header = request.headers.get("authorization", "")
    key = header[7:].strip() if header.lower().startswith("bearer ") else request.headers.get("x-api-key")
    return user_for_key(request.app.state.settings, key)


CurrentUser = Annotated[str, Depends(current_user)]

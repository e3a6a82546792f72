"""Callers named by an ``x-user`` header (a stand-in for a real identity provider); ada is an admin."""

from langgraph_sdk import Auth

auth = Auth()
ADMINS = {"ada"}


@auth.authenticate
async def authenticate(headers: dict[bytes, bytes]) -> Auth.types.MinimalUserDict:
    name = headers.get(b"x-user", b"").decode()
    if not name.isalpha():
        raise Auth.exceptions.HTTPException(status_code=401, detail="say who you are in x-user")
    return {"identity": name, "permissions": ["admin"] if name in ADMINS else []}

"""Two users by bearer token, one an admin; no Loom imports."""

from langgraph_sdk import Auth

auth = Auth()

USERS: dict[str, Auth.types.MinimalUserDict] = {
    "token-ada": {"identity": "ada", "permissions": ["admin"]},
    "token-bob": {"identity": "bob", "permissions": []},
}


@auth.authenticate
async def authenticate(authorization: str | None) -> Auth.types.MinimalUserDict:
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or token not in USERS:
        raise Auth.exceptions.HTTPException(status_code=401, detail="unknown or missing bearer token")
    return USERS[token]

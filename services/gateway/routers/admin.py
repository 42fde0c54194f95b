"""People and keys, and the audit log: admin keys only (the edge refuses others with 403 before these run)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Query
from pydantic import Field

from services.gateway.deps import AUTH, Gateway, gateway
from services.gateway.principals import PrincipalStore
from services.gateway.schemas import Strict
from shared.contracts import window_days
from shared.errors import Unavailable

router = APIRouter(tags=["admin"], dependencies=AUTH)


class UserIn(Strict):
    name: str = Field(min_length=1, max_length=64, description="Lower-case letters, digits, '.', '-' and '_'.")
    role: str = Field("reader", description="reader (search, read, ask), writer (also capture, ingest, edit, delete) or admin.")


class KeyIn(Strict):
    user: str = Field(min_length=1, max_length=64)
    projects: list[str] | None = Field(None, max_length=200, description="The projects the key reaches; left out: every project.")


class UserPatch(Strict):
    disabled: bool


def people(g: Gateway) -> PrincipalStore:
    if g.keys.people is None:
        raise Unavailable("admin: this gateway keeps no users (it has no database)")
    return g.keys.people


@router.get("/api/v1/admin/users")
async def list_users(g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return {"users": await people(g).users()}


@router.post("/api/v1/admin/users", status_code=201)
async def add_user(body: UserIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return await people(g).add_user(body.name, body.role)


@router.patch("/api/v1/admin/users/{name}")
async def patch_user(name: str, body: UserPatch, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """Disable a user (every key of theirs stops working within seconds) or enable them again."""
    return await people(g).set_disabled(name, body.disabled)


@router.get("/api/v1/admin/keys")
async def list_keys(user: str = Query("", max_length=64), g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return {"keys": await people(g).keys(user)}


@router.post("/api/v1/admin/keys", status_code=201)
async def create_key(body: KeyIn, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """A new key, shown once in ``key``: only its SHA-256 is kept."""
    return await people(g).create_key(body.user, body.projects)


@router.delete("/api/v1/admin/keys/{key_id}")
async def revoke_key(key_id: str, g: Gateway = Depends(gateway)) -> dict[str, Any]:
    return await people(g).revoke(key_id)


@router.get("/api/v1/audit")
async def audit(since: str = Query("1d", pattern=r"^\d{1,5}(\.\d+)?[dhw]?$"), action: str = Query("", pattern=r"^(write|read|denied)?$"),
                limit: int = Query(1000, ge=1, le=10_000), g: Gateway = Depends(gateway)) -> dict[str, Any]:
    """The audit log, newest first: each write, each read of a document's content and each denied request."""
    store = people(g)
    await store.flush(1.0)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(days=window_days(since))
    return {"entries": await store.audit(start, limit, action)}

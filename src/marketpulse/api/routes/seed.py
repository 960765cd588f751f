"""``POST /api/admin/seed``: load exchanges, sectors and the demo universe (as ``marketpulse db
seed`` does) on a running installation, without shell access to it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

from marketpulse.api.deps import PoolDep, SettingsDep
from marketpulse.api.security import AdminUser
from marketpulse.seed import seed_reference_data
from marketpulse.store.database import DATABASE_ERRORS

router = APIRouter(prefix="/api/admin", tags=["admin"])


@router.post(
    "/seed",
    summary="Load exchanges, sectors and the demo universe (idempotent)",
    responses={503: {"description": "PostgreSQL unavailable"}},
)
async def seed(pool: PoolDep, settings: SettingsDep, _: AdminUser) -> dict[str, Any]:
    """Counts per step of rows inserted, updated and unchanged; a second run reports
    ``changed: false``."""
    try:
        report = await seed_reference_data(pool, settings)
    except DATABASE_ERRORS as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc
    return report.as_dict()

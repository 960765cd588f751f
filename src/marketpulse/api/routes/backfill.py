"""Backfill over REST: ``POST /api/historical/backfill`` starts a job, ``GET …/{id}`` follows it.

The job runs in this API process; its progress is kept in PostgreSQL, so any replica answers
the GET. The request is validated (provider, interval, range, symbols through the instrument
master) before the 202, so a job that is accepted can run.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from marketpulse.api.deps import PoolDep
from marketpulse.api.routes.history import as_utc
from marketpulse.api.security import require_admin, require_user
from marketpulse.store.backfill import BackfillError, BackfillJobs, BackfillPlan, read_job
from marketpulse.store.database import DATABASE_ERRORS
from marketpulse.store.instruments import UnknownInstrumentError

router = APIRouter(tags=["history"])


def _jobs(request: Request) -> BackfillJobs:
    return cast(BackfillJobs, request.app.state.backfills)


JobsDep = Annotated[BackfillJobs, Depends(_jobs)]


class BackfillRequest(BaseModel):
    symbols: list[str] = Field(min_length=1, max_length=500, examples=[["RELIANCE.NSE"]])
    interval: str = Field("1m", examples=["1m"])
    start: datetime = Field(description="range start (ISO 8601; no offset = UTC)")
    end: datetime = Field(description="range end, exclusive")
    provider: str = Field(examples=["kite"], description="a feed with REST history")


@router.post("/api/historical/backfill", status_code=202, summary="Start a backfill job",
             dependencies=[Depends(require_admin)])  # fmt: skip
async def start_backfill(body: BackfillRequest, jobs: JobsDep) -> dict[str, Any]:
    plan = BackfillPlan(body.provider, tuple(dict.fromkeys(body.symbols)), body.interval.strip(),
                        as_utc(body.start), as_utc(body.end))  # fmt: skip
    try:
        state = await jobs.start(plan)
    except (BackfillError, UnknownInstrumentError) as exc:
        raise HTTPException(422, str(exc)) from exc
    except DATABASE_ERRORS as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc
    return {"id": str(state.id), "status": state.status,
            "url": f"/api/historical/backfill/{state.id}"}  # fmt: skip


@router.get("/api/historical/backfill/{job_id}", summary="Progress and result of a backfill",
            dependencies=[Depends(require_user)])  # fmt: skip
async def backfill_status(job_id: uuid.UUID, pool: PoolDep) -> dict[str, Any]:
    try:
        job = await read_job(pool, job_id)
    except DATABASE_ERRORS as exc:
        raise HTTPException(503, f"database unavailable: {exc}") from exc
    if job is None:
        raise HTTPException(404, f"no backfill job {job_id}")
    job["id"] = str(job["id"])
    return job

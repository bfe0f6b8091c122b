"""Shapes of the API's documents, for the OpenAPI description (``/openapi.json``) and response checks.

Times are Unix timestamps (seconds), durations seconds, memory bytes unless a name says MB. The status
document (``GET /api/v1/tasks/{id}``) is left free-form on purpose: it is whatever
``autosplit status --json`` prints, and must not be filtered by a second description of it.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class Problem(BaseModel):
    """An error: what went wrong and what to do."""

    detail: str


class Units(BaseModel):
    total: int = Field(description="units (run, lumi pairs) of the dataset after the mask")
    done: int
    pending: int = Field(description="not done yet: waiting, or in a job now")
    quarantined: int
    in_jobs: int = Field(description="pending units held by a job now")


class TaskEntry(BaseModel):
    id: str = Field(description="the task's id in this server's URLs")
    name: str
    state: str = Field(description="as in status; 'unreadable' when the directory cannot be read now")
    final: bool = Field(description="the state can no longer change by itself")
    units: Units | None
    progress: float = Field(description="units done / total, 0 to 1")
    stage: str | None = Field(description="the latest stage")
    remaining_seconds: float | None = Field(description="rough time until the task ends")
    error: str | None


class TaskList(BaseModel):
    roots: list[str] = Field(description="the directories this server was started on")
    tasks: list[TaskEntry]


class Attempt(BaseModel):
    attempt: int
    outcome: str = Field(description="the postjob's verdict: ok, soft-stopped, wall-time, unit-failure, ...")
    exit_code: int | None
    message: str | None = None
    site: str | None
    wall_seconds: float | None
    cpu_seconds: float | None
    peak_rss_bytes: int | None
    events: int | None
    units_done: int
    units_returned: int
    elapsed_seconds: float | None = Field(None, description="from the job's creation to this report")
    time: float = Field(description="when the postjob recorded it")


class Job(BaseModel):
    node: str
    stage: str
    state: str = Field(description="display state, as status counts it per stage")
    ledger_state: str = Field(description="planned, finished, failed or killed")
    kind: str | None = Field(None, description="probe, bulk, or alone (a unit that must run by itself)")
    outcome: str | None = Field(None, description="the outcome that ended the job; None while it is not over")
    ended: float | None = Field(None, description="when the job ended; None while it is not over")
    n_units: int
    events: int
    predicted_seconds: float | None = Field(description="the plan's predicted runtime")
    soft_limit_seconds: float | None
    hard_limit_seconds: float | None
    memory_mb: int | None
    attempts: int
    kill_requested: bool
    last_attempt: Attempt | None


class JobsPage(BaseModel):
    total: int = Field(description="jobs matching the filters, over all pages")
    offset: int
    limit: int
    jobs: list[Job]


class LumiReports(BaseModel):
    """The golden-JSON lumi lists of ``autosplit report`` (run -> inclusive lumi ranges)."""

    task: str
    lumis: dict[str, int] = Field(description="number of lumis in each list")
    processedLumis: dict[str, list[list[int]]]
    notFinishedLumis: dict[str, list[list[int]]]
    quarantinedLumis: dict[str, list[list[int]]]


class RuntimeJob(BaseModel):
    node: str
    stage: str
    kind: str | None = None
    predicted_seconds: float | None
    soft_limit_seconds: float | None
    hard_limit_seconds: float | None
    measured: list[Attempt] = Field(description="every attempt of the job, in time order")


class Runtimes(BaseModel):
    task: str
    target_seconds: float = Field(description="the task's target job runtime")
    probe_seconds: float = Field(description="the probe jobs' soft limit")
    grace_seconds: float
    jobs: list[RuntimeJob]


class TimelinePoint(BaseModel):
    time: float
    units_done: int


class Timeline(BaseModel):
    task: str
    total_units: int
    points: list[TimelinePoint] = Field(description="cumulative units done after each accepted report")

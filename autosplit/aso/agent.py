"""The transfer agent: takes rows under a lease, copies, verifies, renames, cleans up, records the outcome.

One loop (main thread) acquires work, renews leases (heartbeat) and records results; a small thread pool
copies. Per transfer:

1. ACQUIRED -> SUBMITTED (checks the lease token; a row killed or reclaimed meanwhile is dropped);
2. only for a row taken before (its agent may have died): remove a leftover partial temporary file, and
   if the final file already holds the registered size and checksum (it died after the rename), skip to 5;
3. copy the source to the transfer's temporary name at the destination, computing the checksum of the
   bytes written;
4. verify size and checksum against the registration; check the row is still ours (not reclaimed, not
   killed); rename into place;
5. remove the temp copy at the site; the main loop then records DONE (several rows per transaction).

A failure goes to RETRY with backoff or FAILED (permanent kinds at once; checksum/size mismatches become
permanent once retries run out). If the agent dies anywhere, its rows' leases expire and another agent
(or the same one restarted) resumes them from step 1; every step is safe to repeat.

Stopping (SIGTERM, :meth:`Agent.request_stop`, or a stop file): copies in progress are abandoned, their
temporary files removed and their rows released (NEW/RETRY, retry count unchanged), then ``run`` returns.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from autosplit.aso.db import TransferDB, open_db
from autosplit.aso.errors import PERMANENT_AFTER_RETRIES, TransferCancelled, TransferError
from autosplit.aso.flow import FlowLimits, RetryPolicy
from autosplit.aso.records import Transfer
from autosplit.aso.transports import (
    Location,
    PosixTransport,
    Transport,
    classify_message,
    make_transport,
    url_scheme,
)

log = logging.getLogger("autosplit.aso")
T = TypeVar("T")
Until = Literal["stopped", "idle", "final"]


@dataclass(frozen=True)
class AgentConfig:
    """How an agent works. Seconds for times.

    ``workers``: concurrent copies; ``prefetch``: extra rows acquired ahead so each acquisition (one write
    transaction) serves several transfers; ``lease_seconds``: how long an agent may hold a row without
    renewing it (heartbeat every third of it) -- after a crash its rows wait this long before another
    agent takes them; ``poll_seconds``: sleep when there is nothing to do; ``housekeeping_seconds``: how
    often temp copies of killed transfers are removed.
    """

    workers: int = 2
    prefetch: int = 8
    lease_seconds: float = 120.0
    poll_seconds: float = 1.0
    housekeeping_seconds: float = 30.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    flow: FlowLimits = field(default_factory=FlowLimits)

    def __post_init__(self) -> None:
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.prefetch < 0:
            raise ValueError(f"prefetch must be >= 0, got {self.prefetch}")
        if self.lease_seconds <= 0 or self.poll_seconds <= 0:
            raise ValueError("lease_seconds and poll_seconds must be positive")


@dataclass
class AgentStats:
    """What one :meth:`Agent.run` did. Seconds and bytes.

    ``db_seconds`` is wall time spent in transfer-database calls (all threads), ``copy_seconds`` the sum
    of per-transfer times (copy + verify + rename + source removal). ``already_there``: transfers found
    complete at the destination (left by an agent that died after renaming). ``lost``: rows dropped because
    their lease was taken over or they were killed while being copied.
    """

    owner: str = ""
    done: int = 0
    failed: int = 0
    retried: int = 0
    released: int = 0
    lost: int = 0
    already_there: int = 0
    cleaned: int = 0
    errors: int = 0
    bytes_done: int = 0
    acquired: int = 0
    acquire_calls: int = 0
    db_calls: int = 0
    db_seconds: float = 0.0
    copy_seconds: float = 0.0
    wall_seconds: float = 0.0
    stopped_by: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Agent:
    """A stage-out agent on one transfer database.

    ``transports`` maps URL schemes ("" for plain paths) to :class:`Transport` instances; POSIX is built in,
    other schemes come from :func:`~autosplit.aso.transports.register_transport`.
    """

    def __init__(
        self,
        db: TransferDB | str | os.PathLike[str],
        config: AgentConfig | None = None,
        *,
        transports: Mapping[str, Transport] | None = None,
        owner: str | None = None,
    ) -> None:
        self.db, self._owns_db = open_db(db, create=True)
        self.config = config or AgentConfig()
        posix = PosixTransport()
        self.transports: dict[str, Transport] = {"": posix, "file": posix}
        self.transports.update(transports or {})
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.stats = AgentStats(owner=self.owner)
        self._stop = threading.Event()
        self._cancel = threading.Event()
        self._lock = threading.Lock()

    # -- control -----------------------------------------------------------------------------------

    def request_stop(self, reason: str = "request") -> None:
        """Ask :meth:`run` to stop soon (thread- and signal-safe)."""
        if not self._stop.is_set():
            self.stats.stopped_by = self.stats.stopped_by or reason
        self._stop.set()

    def install_signal_handlers(self) -> dict[int, Any]:
        """Stop cleanly on SIGTERM and SIGINT; returns the previous handlers (a no-op outside the main thread)."""
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            name = signal.Signals(signum).name
            previous[signum] = signal.signal(signum, lambda *_, name=name: self.request_stop(name))
        return previous

    def close(self) -> None:
        if self._owns_db:
            self.db.close()

    # -- main loop ---------------------------------------------------------------------------------

    def run(
        self,
        until: Until = "stopped",
        *,
        stop_file: str | os.PathLike[str] | None = None,
        timeout: float | None = None,
    ) -> AgentStats:
        """Work until told to stop (``"stopped"``), until nothing is eligible now (``"idle"``: rows waiting
        for a retry backoff or held by another live agent are left), or until every row is final
        (``"final"``). ``stop_file``: stop when this file exists; ``timeout``: stop after this many seconds.
        """
        cfg = self.config
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        capacity = cfg.workers + cfg.prefetch
        heartbeat_every = cfg.lease_seconds / 3
        next_heartbeat = time.monotonic() + heartbeat_every
        next_housekeeping = 0.0
        inflight: dict[Future[_Delivered | None], Transfer] = {}
        delivered: list[_Delivered] = []
        stop_path = Path(stop_file) if stop_file is not None else None
        self._cancel.clear()
        pool = ThreadPoolExecutor(cfg.workers, thread_name_prefix="aso-copy")
        try:
            while True:
                if stop_path is not None and stop_path.exists():
                    self.request_stop(f"stop file {stop_path}")
                if deadline is not None and time.monotonic() >= deadline:
                    self.request_stop("timeout")
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if now >= next_housekeeping:
                    self._housekeeping()
                    next_housekeeping = now + cfg.housekeeping_seconds
                if inflight and now >= next_heartbeat:
                    try:
                        self._db(self.db.renew, self.owner, cfg.lease_seconds)
                        next_heartbeat = now + heartbeat_every
                    except sqlite3.OperationalError as exc:  # retried next time round
                        self._count(errors=1)
                        log.warning("aso: cannot renew leases: %s", exc)
                got: list[Transfer] = []
                if len(inflight) < capacity and len(inflight) <= cfg.workers:
                    self._flush(delivered)  # frees flow-control capacity before asking for more
                    got = self._acquire(capacity - len(inflight))
                    for row in got:
                        inflight[pool.submit(self._transfer, row)] = row
                if not inflight:
                    self._flush(delivered)
                    if until == "idle" and not got:
                        break
                    if until == "final" and self._db(self.db.count_active) == 0:
                        break
                    self._stop.wait(cfg.poll_seconds)
                    continue
                finished, _ = wait(
                    list(inflight),
                    timeout=min(cfg.poll_seconds, heartbeat_every),
                    return_when=FIRST_COMPLETED,
                )
                for future in finished:
                    inflight.pop(future)
                    self._reap(future, delivered)
                if len(delivered) >= _FLUSH_BATCH or (delivered and not finished):
                    self._flush(delivered)
        finally:
            self._cancel.set()
            for future in list(inflight):
                future.exception()  # waits; copies see the cancel flag and release their rows
                self._reap(future, delivered)
            pool.shutdown(wait=True)
            try:
                self._flush(
                    delivered
                )  # if this fails, the next agent finds them complete at their destination
            except Exception as exc:
                log.warning("aso: cannot record %d finished transfers: %s", len(delivered), exc)
            self._housekeeping()
            self.stats.wall_seconds = time.monotonic() - started
        return self.stats

    def _reap(self, future: Future[_Delivered | None], delivered: list[_Delivered]) -> None:
        exc = future.exception()
        if exc is not None:
            self._count(errors=1)
            log.error("aso: internal error in a transfer: %s: %s", type(exc).__name__, exc)
        elif (result := future.result()) is not None:
            delivered.append(result)

    def _flush(self, delivered: list[_Delivered]) -> None:
        """Record delivered files as DONE, several per transaction (crash before this: the next agent finds
        them complete at their destination)."""
        if not delivered:
            return
        batch = [(d.row.id, d.row.lease_token or "", d.seconds, d.source_removed) for d in delivered]
        try:
            recorded = self._db(self.db.mark_done_many, batch)
        except sqlite3.OperationalError as exc:  # locked past the busy timeout: keep them, try again soon
            self._count(errors=1)
            log.warning("aso: cannot record %d finished transfers yet: %s", len(batch), exc)
            return
        for item, ok in zip(delivered, recorded, strict=True):
            if ok:
                self._count(done=1, bytes_done=item.row.size, copy_seconds=item.seconds)
                log.debug(
                    "aso: done %s (%d bytes, %.3f s)", item.row.destination, item.row.size, item.seconds
                )
            else:
                self._count(lost=1)
        delivered.clear()

    def _acquire(self, n: int) -> list[Transfer]:
        cfg = self.config
        try:
            got = self._db(self.db.acquire, self.owner, n, cfg.lease_seconds, cfg.flow)
        except Exception as exc:  # e.g. the database stayed locked past the busy timeout: try again later
            self._count(errors=1)
            log.warning("aso: cannot acquire work: %s", exc)
            return []
        self._count(acquired=len(got), acquire_calls=1)
        return got

    def _housekeeping(self) -> None:
        """Remove temp copies (site side and partial destination copies) of killed transfers, and site
        temp copies of delivered files whose removal failed before. Never raises: it is retried later."""
        try:
            rows = self._db(self.db.cleanup_candidates, 200)
            for row in rows:
                try:
                    transport = self._transport_for(row)
                    transport.discard(Location(row.dest_root, row.dest_path), row.id)
                    transport.remove(Location(row.source_root, row.source_path))
                except TransferError as exc:
                    log.warning("aso: cannot remove temp copy of %s transfer %s: %s", row.state, row.id, exc)
                    continue
                self._db(self.db.mark_source_removed, row.id)
                self._count(cleaned=1)
        except Exception as exc:
            log.warning("aso: housekeeping stopped early: %s", exc)

    # -- one transfer ------------------------------------------------------------------------------

    def _transfer(self, row: Transfer) -> _Delivered | None:
        """Copy one file; returns what to record as DONE (the main loop batches those), None otherwise."""
        cfg = self.config
        token = row.lease_token or ""
        started = time.monotonic()
        if self._cancel.is_set():
            self._release(row)
            return None
        if not self._db(self.db.mark_submitted, row.id, token, cfg.lease_seconds):
            self._count(lost=1)
            return None
        source = Location(row.source_root, row.source_path)
        dest = Location(row.dest_root, row.dest_path)
        try:
            transport = self._transport_for(row)
            # Taken before: an agent may have died mid-copy (partial temporary file) or after the rename
            # (complete final file). A first acquisition can have neither, so it skips these checks.
            resumed = row.acquisitions > 1
            if resumed:
                transport.discard(dest, row.id)
            if resumed and self._already_there(transport, dest, row):
                self._count(already_there=1)
            else:
                try:
                    self._copy(transport, source, dest, row, token)
                except _Lost:
                    self._count(lost=1)
                    return None
                except TransferError as exc:
                    # another agent may have delivered it and removed the temp copy since we looked
                    if exc.kind != "missing-source" or not self._already_there(transport, dest, row):
                        raise
                    self._count(already_there=1)
            try:
                transport.remove(source)
                removed = True
            except TransferError as exc:  # delivered all the same; housekeeping tries again later
                removed = False
                log.warning("aso: delivered %s but cannot remove its temp copy: %s", dest, exc)
            return _Delivered(row, time.monotonic() - started, removed)
        except TransferCancelled:
            self._release(row)
        except TransferError as exc:
            if exc.kind == "busy":  # a live agent still writes this transfer: let it finish
                self._release(row, delay=cfg.lease_seconds)
            else:
                self._fail(row, token, exc.reason, exc.kind, exc.permanent)
        except Exception as exc:  # a transport that raises plain exceptions: classify by message
            kind, permanent = classify_message(str(exc))
            self._fail(row, token, f"{type(exc).__name__}: {exc}", kind, permanent)
        return None

    def _copy(
        self, transport: Transport, source: Location, dest: Location, row: Transfer, token: str
    ) -> None:
        with transport.copy(source, dest, row.id, row.checksum_algo, cancel=self._cancel) as part:
            if part.size != row.size:
                raise TransferError(
                    f"{source}: size mismatch: registered {row.size} bytes, temporary copy has {part.size}",
                    kind="size-mismatch",
                )
            if part.checksum != row.checksum:
                raise TransferError(
                    f"{dest}: checksum mismatch: registered {row.checksum_algo} {row.checksum}, "
                    f"copied data has {part.checksum}",
                    kind="checksum-mismatch",
                )
            # last look before the rename: still ours, not killed
            if not self._db(self.db.holds, row.id, token):
                raise _Lost
            part.commit()

    def _already_there(self, transport: Transport, dest: Location, row: Transfer) -> bool:
        if transport.stat(dest) != row.size:
            return False
        return transport.checksum(dest, row.checksum_algo) == row.checksum

    def _fail(self, row: Transfer, token: str, reason: str, kind: str, permanent: bool) -> None:
        state = self._db(
            self.db.record_failure,
            row.id,
            token,
            reason,
            kind=kind,
            permanent=permanent,
            policy=self.config.retry,
            permanent_after_retries=kind in PERMANENT_AFTER_RETRIES,
            source_gone=kind == "missing-source",
        )
        if state is None:
            self._count(lost=1)
        elif state == "FAILED":
            self._count(failed=1)
            log.warning("aso: FAILED %s: %s: %s", row.destination, kind, reason)
        else:
            self._count(retried=1)
            log.info("aso: will retry %s: %s: %s", row.destination, kind, reason)

    def _release(self, row: Transfer, delay: float = 0.0) -> None:
        try:
            if self._db(self.db.release, row.id, row.lease_token or "", delay=delay):
                self._count(released=1)
        except Exception as exc:  # the lease expires anyway
            log.warning("aso: cannot release %s: %s", row.id, exc)

    def _transport_for(self, row: Transfer) -> Transport:
        scheme = url_scheme(row.dest_root)
        transport = self.transports.get(scheme)
        if transport is None:
            transport = self.transports[scheme] = make_transport(scheme)
        source_scheme = url_scheme(row.source_root)
        if source_scheme not in transport.schemes:
            raise TransferError(
                f"transport for {scheme or 'paths'} cannot read {source_scheme or 'paths'} sources",
                kind="no-transport",
                permanent=True,
            )
        return transport

    # -- bookkeeping ---------------------------------------------------------------------------------

    def _db(self, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        start = time.perf_counter()
        try:
            return func(*args, **kwargs)
        finally:
            self._count(db_calls=1, db_seconds=time.perf_counter() - start)

    def _count(self, **increments: float) -> None:
        with self._lock:
            for name, value in increments.items():
                setattr(self.stats, name, getattr(self.stats, name) + value)


_FLUSH_BATCH = 32


@dataclass(frozen=True)
class _Delivered:
    """A file verified at its destination, waiting to be recorded DONE."""

    row: Transfer
    seconds: float
    source_removed: bool


class _Lost(Exception):
    """The row's lease was taken over or the row was killed before the rename."""


def run_agent(
    db: TransferDB | str | os.PathLike[str],
    config: AgentConfig | None = None,
    *,
    until: Until = "stopped",
    stop_file: str | os.PathLike[str] | None = None,
    timeout: float | None = None,
    handle_signals: bool = False,
    transports: Mapping[str, Transport] | None = None,
) -> AgentStats:
    """Convenience wrapper: build an :class:`Agent`, run it (see :meth:`Agent.run`), close it.

    ``handle_signals``: stop cleanly on SIGTERM/SIGINT (only from the main thread).
    """
    agent = Agent(db, config, transports=transports)
    previous = agent.install_signal_handlers() if handle_signals else {}
    try:
        return agent.run(until, stop_file=stop_file, timeout=timeout)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        agent.close()

"""Recovery of the PostgreSQL connection pools after PostgreSQL fails (a restart, a failover, a crash).

Both pools, Django's and the LangGraph Store's (canvas_project.store), hand out idle connections without
testing them: a test at every checkout costs a round trip (85 us measured on these machines) on every
request. So after PostgreSQL restarts, each dead idle connection would fail one more request, long
after PostgreSQL is back. Instead, a request that meets a database error has every idle connection of
both pools tested in a background thread (one such check at a time), and the dead ones are replaced.
"""

from __future__ import annotations

import logging
import threading

import psycopg
from django.db import InterfaceError, OperationalError, connections

from canvas_project.store import current_pool

logger = logging.getLogger(__name__)

_checking = threading.Lock()


def is_database_failure(exc: BaseException) -> bool:
    """PostgreSQL unreachable or the connection lost: Django's wrappers, psycopg's errors, or a domain
    error raised from one (the Store's StoreUnavailable)."""

    for error in (exc, exc.__cause__):
        if isinstance(error, OperationalError | InterfaceError | psycopg.OperationalError | psycopg.InterfaceError):
            return True
    return False


def check_pools_soon() -> None:
    """Test the idle connections of both pools in the background; returns at once."""
    if not _checking.acquire(blocking=False):
        return  # a check is under way
    try:
        threading.Thread(target=_check_pools, name="pool-check", daemon=True).start()
    except RuntimeError:  # no thread to be had (interpreter shutting down)
        _checking.release()


def _check_pools() -> None:

    try:
        for pool in (connections["default"].pool, current_pool()):
            if pool is None or pool.closed:
                continue
            try:
                pool.check()
            except Exception:  # noqa: BLE001 - a failed check leaves the pool as it was
                logger.warning("checking the connections of pool %s failed", pool.name, exc_info=True)
    finally:
        _checking.release()

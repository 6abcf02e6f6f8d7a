"""Reads of the superadmin app: a deal's Redis footprint, and the rows a purge of all deals consults."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from canvas.models import ACTIVE_RUN_STATUSES, SynthesisRun
from canvas_project import keys
from canvas_project.keyspace import deal_node_client, normalise_deal_id, purge_redis_client
from canvas_project.store import deal_thread_ids, deal_thread_prefix, get_pool
from deals.models import Deal, Org

# Every thread of a deal is named `<prefix of that deal>...` (canvas_project.store); the part before the
# deal id is the same for all deals, which lets one query list the threads of every deal.
_THREAD_PREFIX = deal_thread_prefix(uuid.UUID(int=0)).removesuffix(f"{uuid.UUID(int=0)}:")


@dataclass
class FamilyFootprint:
    family: str
    protected: bool
    description: str
    key_count: int = 0
    approx_bytes: int = 0
    ttl_min_seconds: int | None = None  # among keys with a TTL
    ttl_max_seconds: int | None = None
    keys_without_ttl: int = 0
    keys: list[dict] = field(default_factory=list)  # {key, bytes, ttl_seconds}, first KEYS_LISTED


@dataclass
class DealFootprint:
    deal_id: str
    deal_exists: bool
    deal_name: str | None
    families: list[FamilyFootprint]
    index_entries: int
    index_bytes: int
    total_keys: int
    total_bytes: int
    checkpoint_threads: int


KEYS_LISTED = 50


def deal_redis_footprint(*, deal_id: uuid.UUID | str, with_checkpoints: bool = True) -> DealFootprint:
    """What Redis holds for one deal, by family: key count, approximate bytes (MEMORY USAGE), TTLs.

    Reads the fixed names and the deal's index, never the keyspace. Raises redis errors when Redis is
    down and psycopg errors when the checkpoint table is unreachable (with_checkpoints).
    """
    deal = normalise_deal_id(deal_id)
    node = deal_node_client(purge_redis_client(), deal)
    index = keys.index_key(deal)
    members = sorted(m.decode() for m in node.smembers(index))
    names: dict[str, list[str]] = {family: list(found) for family, found in keys.fixed_keys(deal).items()}
    for member in members:
        found = keys.classify(member)
        if found is not None and found[0] in keys.FAMILIES and found[1] == deal:
            names.setdefault(found[0], []).append(member)
    flat = [(family, name) for family in keys.FAMILIES for name in dict.fromkeys(names.get(family, []))]
    with node.pipeline(transaction=False) as pipe:
        for _, name in flat:
            pipe.memory_usage(name)
            pipe.ttl(name)
        pipe.memory_usage(index)
        replies = pipe.execute()
    families = {name: FamilyFootprint(name, f.protected, f.description) for name, f in keys.FAMILIES.items()}
    for position, (family, name) in enumerate(flat):
        size, ttl = replies[2 * position], replies[2 * position + 1]
        if size is None or ttl == -2:  # gone (expired, or never written)
            continue
        row = families[family]
        row.key_count += 1
        row.approx_bytes += int(size)
        if ttl == -1:
            row.keys_without_ttl += 1
        else:
            row.ttl_min_seconds = ttl if row.ttl_min_seconds is None else min(row.ttl_min_seconds, ttl)
            row.ttl_max_seconds = ttl if row.ttl_max_seconds is None else max(row.ttl_max_seconds, ttl)
        if len(row.keys) < KEYS_LISTED:
            row.keys.append({"key": name, "bytes": int(size), "ttl_seconds": None if ttl == -1 else ttl})
    record = Deal.objects.filter(pk=deal).only("name").first()
    rows = list(families.values())
    return DealFootprint(
        deal_id=deal,
        deal_exists=record is not None,
        deal_name=record.name if record else None,
        families=rows,
        index_entries=len(members),
        index_bytes=int(replies[-1] or 0),
        total_keys=sum(r.key_count for r in rows),
        total_bytes=sum(r.approx_bytes for r in rows),
        checkpoint_threads=len(deal_thread_ids(deal)) if with_checkpoints else 0,
    )


def deals_with_active_runs(*, deal_ids: set[str] | None = None) -> set[str]:
    """Deals with a queued or running synthesis run (all deals, or among `deal_ids`)."""
    runs = SynthesisRun.objects.filter(status__in=ACTIVE_RUN_STATUSES)
    if deal_ids is not None:
        runs = runs.filter(deal_id__in=deal_ids)
    return {str(pk) for pk in runs.values_list("deal_id", flat=True).distinct()}


def deals_with_checkpoint_threads(*, deal_ids: set[str] | None = None) -> set[str]:
    """Deals that have LangGraph checkpoint threads, read in one query over the Saver's table."""
    pattern = _THREAD_PREFIX.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%") + "%"
    with get_pool().connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT split_part(substr(thread_id, %s), ':', 1) AS head FROM checkpoints "
            "WHERE thread_id LIKE %s",
            (len(_THREAD_PREFIX) + 1, pattern),
        ).fetchall()
    found: set[str] = set()
    for row in rows:
        try:
            deal = str(uuid.UUID(row["head"]))
        except ValueError:
            continue
        if deal_ids is None or deal in deal_ids:
            found.add(deal)
    return found


def all_deal_ids() -> set[str]:
    """Every deal PostgreSQL knows: the deals a purge of mode all takes by name before its sweep."""
    return {str(pk) for pk in Deal.objects.values_list("pk", flat=True)}


def deal_ids_of_org(*, org_id: uuid.UUID | str) -> set[str] | None:
    """The org's deal ids, or None when no org has this id."""
    if not Org.objects.filter(pk=org_id).exists():
        return None
    return {str(pk) for pk in Deal.objects.filter(org_id=org_id).values_list("pk", flat=True)}

"""The Redis key registry: the only module that spells a Redis key.

Every per-deal key carries the deal id as a Redis Cluster hash tag, `{<deal_id>}`, so all of one
deal's keys live in one slot and can be deleted in one multi-key UNLINK. Keys are grouped into the
families of docs/architecture.md ("Key registry"); the purge reads FAMILIES to know what exists,
`fixed_keys()` for the names it can compute, and the per-deal index set (`index_key`) for the variable
ones (locks per section, crops per document, brush findings, runs), so purging one deal never scans the
keyspace.

Producers build keys only through the builders below and register variable keys with
`track_variable_key()` in the same pipeline that writes them.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter

PREFIX = "canvas"

# --- TTLs (seconds), next to the builders that use them ------------------------------------------
SESSION_TTL = 48 * 3600
LOCK_TTL = 60
PRESENCE_TTL = 120
EVENTS_TTL = 7 * 24 * 3600
IMAGE_CROP_TTL = 24 * 3600
DIGITIZATION_TTL = 7 * 24 * 3600
INTAKE_TTL = 7 * 24 * 3600
READINESS_TTL = 3600
# The engines' canvas context is validated by the deal row's counters on every read; the TTL only bounds
# how long a cache could outlive a write whose process died between the Store write and the counter bump.
CONTEXT_CACHE_TTL = 3600
DEAL_INTEL_TTL = 24 * 3600
BRUSH_TTL = 24 * 3600
RUN_EVENTS_TTL = 24 * 3600
RUN_CANCEL_TTL = 24 * 3600
RUN_TRACE_TTL = 600
# The index outlives every key it lists, so no tracked key is ever orphaned from it.
INDEX_TTL = 8 * 24 * 3600
# Worker heartbeats older than this are dropped; the set itself goes when no worker beats for as long.
WORKER_HEARTBEATS_TTL = 24 * 3600

RUN_PARTS = ("events", "cancel", "trace")


def _tag(deal_id: uuid.UUID | str) -> str:
    return "{" + str(uuid.UUID(str(deal_id))) + "}"


def _segment(value: object, name: str) -> str:
    text = str(value)
    if not text or any(ch in text for ch in "{}: \n\r\t*?[]"):
        raise ValueError(f"{name} may not be empty or contain braces, colons, spaces or glob characters: {text!r}")
    return text


# --- builders -------------------------------------------------------------------------------------
def session_key(deal_id) -> str:
    return f"{PREFIX}:session:{_tag(deal_id)}"


def lock_key(deal_id, section_key: str) -> str:
    return f"{PREFIX}:lock:{_tag(deal_id)}:{_segment(section_key, 'section_key')}"


def presence_key(deal_id) -> str:
    return f"{PREFIX}:presence:{_tag(deal_id)}"


def presence_meta_key(deal_id) -> str:
    """Hash user id -> JSON {name, role, section_key, cursor} beside the presence sorted set."""
    return f"{PREFIX}:presmeta:{_tag(deal_id)}"


def events_key(deal_id) -> str:
    return f"{PREFIX}:events:{_tag(deal_id)}"


def steps_key(deal_id) -> str:
    return f"{PREFIX}:steps:{_tag(deal_id)}"


def discourse_key(deal_id) -> str:
    return f"{PREFIX}:discourse:{_tag(deal_id)}"


def image_crop_key(deal_id, document_id, index: int) -> str:
    return f"{PREFIX}:crops:{_tag(deal_id)}:{_segment(document_id, 'document_id')}:{int(index)}"


def digitization_key(deal_id, document_id) -> str:
    return f"{PREFIX}:digitize:{_tag(deal_id)}:{_segment(document_id, 'document_id')}"


def intake_key(deal_id) -> str:
    return f"{PREFIX}:intake:{_tag(deal_id)}"


def readiness_key(deal_id) -> str:
    return f"{PREFIX}:readiness:{_tag(deal_id)}"


def context_key(deal_id) -> str:
    """Hash of the deal's cached canvas context for engines (internal_api.context_cache): its fields are
    the summary and derived nodes, pages of stored nodes and the stored edges, each tagged with the
    counters it was built at."""
    return f"{PREFIX}:context:{_tag(deal_id)}"


def deal_intel_key(deal_id) -> str:
    return f"{PREFIX}:intel:{_tag(deal_id)}"


def brush_key(deal_id, brush_id) -> str:
    return f"{PREFIX}:brush:{_tag(deal_id)}:{_segment(brush_id, 'brush_id')}"


def run_key(deal_id, run_id, part: str) -> str:
    if part not in RUN_PARTS:
        raise ValueError(f"run key part must be one of {RUN_PARTS}, got {part!r}")
    return f"{PREFIX}:run:{_tag(deal_id)}:{_segment(run_id, 'run_id')}:{part}"


def index_key(deal_id) -> str:
    """The per-deal set of variable key names, read by the purge instead of a keyspace scan."""
    return f"{PREFIX}:index:{_tag(deal_id)}"


# Keys that are not per deal: outside every family, never purged.
def rate_limit_key(bucket: str, subject: object, *, slot_group: str | None = None) -> str:
    """A rate-limit bucket. Hash-tagged for Redis Cluster: by its subject, so buckets spread over the
    shards; or, for buckets one Lua script spends together (login: the username's and the address's), by
    their `slot_group`, so that script's keys share one slot."""
    bucket, subject = _segment(bucket, "bucket"), _segment(subject, "subject")
    if slot_group is not None:
        return f"ratelimit:{{{_segment(slot_group, 'slot_group')}}}:{bucket}:{subject}"
    return f"ratelimit:{bucket}:{{{subject}}}"


def replica_pin_key(subject: object) -> str:
    """String, TTL settings.REPLICA_PIN_SECONDS (a setting, not a constant: operators tune it to their
    replicas' usual lag): present while `subject` (a user id, or `engine`) wrote within that many seconds,
    so its reads stay on the PostgreSQL primary (canvas_project.replicas, read-your-writes)."""
    return f"replica:pin:{_segment(subject, 'subject')}"


def worker_heartbeats_key() -> str:
    """Sorted set: Celery worker hostname -> its last heartbeat (Redis server time, ms); read by the health check."""
    return "health:celery-workers"


def run_seconds_metric_key() -> str:
    """Hash: the deployment-wide histogram of synthesis run durations (dealcanvas_run_seconds), fields
    `<status>:count`, `<status>:sum`, `<status>:le:<bucket>`; written by whichever process finishes a run,
    read by every /metrics. No TTL: a counter that lives as long as Redis does."""
    return "metrics:run_seconds"


# --- families -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class KeyFamily:
    name: str
    kinds: tuple[str, ...]  # the second segment of the key: canvas:<kind>:{D}...
    variable: bool  # names beyond the deal id (tracked in the per-deal index)
    protected: bool  # purged only with include_checkpoints
    ttl_seconds: int
    description: str


FAMILIES: dict[str, KeyFamily] = {
    f.name: f
    for f in (
        KeyFamily("canvas_sessions", ("session",), False, False, SESSION_TTL, "Cached canvas session payload"),
        KeyFamily("locks", ("lock",), True, False, LOCK_TTL, "Section locks (collaboration off)"),
        KeyFamily(
            "presence",
            ("presence", "presmeta"),
            False,
            False,
            PRESENCE_TTL,
            "Who is on the canvas, last seen, and where",
        ),
        KeyFamily(
            "events",
            ("events", "steps", "discourse"),
            False,
            False,
            EVENTS_TTL,
            "Canvas event stream, collaboration steps, agent discourse",
        ),
        KeyFamily("image_crops", ("crops",), True, False, IMAGE_CROP_TTL, "Figures cropped from PDFs"),
        KeyFamily("digitization", ("digitize",), True, False, DIGITIZATION_TTL, "Digitized document cache"),
        KeyFamily("intake_summaries", ("intake",), False, False, INTAKE_TTL, "Intake summary of the deal"),
        KeyFamily("doc_readiness", ("readiness",), False, False, READINESS_TTL, "Readiness score cache"),
        KeyFamily(
            "context_cache",
            ("context",),
            False,
            False,
            CONTEXT_CACHE_TTL,
            "Canvas context for engines (summary, nodes, edges)",
        ),
        KeyFamily("deal_intel", ("intel",), False, False, DEAL_INTEL_TTL, "Extracted deal metrics"),
        KeyFamily("brush_findings", ("brush",), True, False, BRUSH_TTL, "Findings of brush passes"),
        KeyFamily("runs", ("run",), True, True, RUN_EVENTS_TTL, "Synthesis run streams, cancel flags, traces"),
    )
}
# LangGraph checkpoint threads (`deal:<D>:...` in PostgresSaver) are the protected `checkpoints`
# family; they live in PostgreSQL, not Redis, and the purge deletes them through LangGraph.
CHECKPOINTS_FAMILY = "checkpoints"
ALL_FAMILY_NAMES = (*FAMILIES, CHECKPOINTS_FAMILY)

_KIND_TO_FAMILY = {kind: family for family in FAMILIES.values() for kind in family.kinds}
_FIXED_BUILDERS = {
    "session": session_key,
    "presence": presence_key,
    "presmeta": presence_meta_key,
    "events": events_key,
    "steps": steps_key,
    "discourse": discourse_key,
    "intake": intake_key,
    "readiness": readiness_key,
    "context": context_key,
    "intel": deal_intel_key,
}
_KEY_RE = re.compile(r"^" + PREFIX + r":(?P<kind>[a-z_]+):\{(?P<deal>[0-9a-f-]{36})\}(?::.*)?$")
_KEY_RE_BYTES = re.compile(_KEY_RE.pattern.encode())
_FAMILY_OF_KIND = {**{kind: family.name for kind, family in _KIND_TO_FAMILY.items()}, "index": "index"}
_FAMILY_OF_KIND_BYTES = {kind.encode(): name for kind, name in _FAMILY_OF_KIND.items()}
_match_bytes = _KEY_RE_BYTES.match
# The same shape, one key per line: ^ and $ are the line's ends, and `.` never crosses a newline.
_find_lines = re.compile(rb"^(" + PREFIX.encode() + rb":([a-z_]+):\{([0-9a-f-]{36})\}(?::.*)?)$", re.MULTILINE).findall
_family_of_kind_bytes = _FAMILY_OF_KIND_BYTES.get
_kind_of_match = itemgetter(1)


def fixed_keys(deal_id) -> dict[str, list[str]]:
    """Family name -> the keys of the deal whose names are fixed (computable without an index)."""
    keys: dict[str, list[str]] = {}
    for kind, builder in _FIXED_BUILDERS.items():
        keys.setdefault(_KIND_TO_FAMILY[kind].name, []).append(builder(deal_id))
    return keys


def classify(key: str | bytes) -> tuple[str, str] | None:
    """(family name, deal id) of a per-deal key, ("index", deal id) for the index, or None."""
    if isinstance(key, bytes):
        # Bytes straight from SCAN, matched without decoding the whole name: a purge of mode all
        # classifies every key of the keyspace, so this path is the hot one.
        match = _match_bytes(key)
        if match is None:
            return None
        family = _family_of_kind_bytes(match[1])
        return (family, match[2].decode("ascii")) if family else None
    match = _KEY_RE.match(key)
    if match is None:
        return None
    family = _FAMILY_OF_KIND.get(match.group("kind"))
    return (family, match.group("deal")) if family else None


def classify_batch(raw_keys: list[bytes]) -> list[tuple[bytes, str, str]]:
    """(key, family name or "index", deal id) for every per-deal key among raw key names (a SCAN batch).

    The same answers as classify() key by key, in one regex pass over the batch joined by newlines:
    a purge of mode all classifies the whole keyspace, and this halves its cost. A batch where some
    name contains a newline is classified key by key.
    """
    joined = b"\n".join(raw_keys)
    if joined.count(b"\n") != max(len(raw_keys) - 1, 0):
        return [(key, *found) for key in raw_keys if (found := classify(key)) is not None]
    family_of = _family_of_kind_bytes
    return [
        (key, family, deal.decode("ascii")) for key, kind, deal in _find_lines(joined) if (family := family_of(kind))
    ]


def classify_batch_grouped(raw_keys: list[bytes]) -> dict[str, list[tuple[bytes, bytes, bytes]]]:
    """classify_batch() grouped by family (or "index"): family -> [(key, kind, deal id as ASCII bytes)].

    Built without a Python step per key (one regex pass, a sort and a groupby, all in C), for a walk
    that only needs each family's keys and the deals seen. Same keys, same families as classify().
    """
    joined = b"\n".join(raw_keys)
    if joined.count(b"\n") != max(len(raw_keys) - 1, 0):
        rows = [
            (key, b"", deal.encode("ascii"), family)
            for key in raw_keys
            if (found := classify(key)) is not None
            for family, deal in (found,)
        ]
        grouped: dict[str, list[tuple[bytes, bytes, bytes]]] = {}
        for key, kind, deal, family in rows:
            grouped.setdefault(family, []).append((key, kind, deal))
        return grouped
    matches = _find_lines(joined)
    matches.sort(key=_kind_of_match)
    grouped = {}
    for kind, rows in groupby(matches, key=_kind_of_match):
        family = _family_of_kind_bytes(kind)
        if family:  # several kinds may make one family (events: events, steps, discourse)
            grouped.setdefault(family, []).extend(rows)
    return grouped


def scan_pattern() -> str:
    """The SCAN MATCH pattern covering every per-deal key (mode `all`)."""
    return f"{PREFIX}:*"


def track_variable_key(pipe, deal_id, key: str) -> None:
    """Record a variable key in the deal's index, in the producer's own pipeline."""
    index = index_key(deal_id)
    pipe.sadd(index, key)
    pipe.expire(index, INDEX_TTL)

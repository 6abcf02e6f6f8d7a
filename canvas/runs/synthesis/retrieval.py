"""What the drafters read: the deal's passages (one per document page), a BM25 index over them, and
the deal's headline figures (deal intel) with their source pages.

Both come from deals.intel, the public read API of ingestion.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from rank_bm25 import BM25Okapi

from deals.documents.intel import Passage, deal_intel_get, deal_passages

logger = logging.getLogger(__name__)

TOKEN_RE = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")
SENTENCE_RE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9$(\"'])|\n+")
STOPWORDS = frozenset(
    "a an and are as at be by for from has have in is it its of on or that the this to was were which with "
    "will would our their there these those than then into over under per not no".split()
)


@dataclass(frozen=True)
class Hit:
    passage: Passage
    score: float


def _stem(token: str) -> str:
    # a light, deterministic plural/verb folding ("rents" ~ "rent", "leases" ~ "lease"); numbers untouched
    if token.isalpha() and len(token) > 4:
        for suffix in ("ies", "es", "s", "ing", "ed"):
            if token.endswith(suffix) and len(token) - len(suffix) >= 4:
                return token[: -len(suffix)] + ("y" if suffix == "ies" else "")
    return token


def tokenize(text: str) -> list[str]:
    return [_stem(t) for t in TOKEN_RE.findall((text or "").lower()) if t not in STOPWORDS]


def sentences(text: str) -> list[str]:
    """The text's sentences (and table rows / lines), whitespace-normalised, without empties."""
    out = []
    for part in SENTENCE_RE.split(text or ""):
        cleaned = " ".join(part.split())
        if len(cleaned) >= 12:
            out.append(cleaned)
    return out


class PassageIndex:
    """BM25 (Okapi) over the deal's passages. Read-only once built, so drafters share it across threads."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = [p for p in passages if (p.text or "").strip()]
        self._tokens = [tokenize(p.text) for p in self.passages]
        keep = [i for i, tokens in enumerate(self._tokens) if tokens]
        self.passages = [self.passages[i] for i in keep]
        self._tokens = [self._tokens[i] for i in keep]
        self._bm25 = BM25Okapi(self._tokens) if self._tokens else None

    def __len__(self) -> int:
        return len(self.passages)

    @property
    def documents(self) -> int:
        return len({p.document_id for p in self.passages})

    def search(self, query: str, k: int) -> list[Hit]:
        """The k best passages with a positive score, best first (ties in document order)."""
        terms = tokenize(query)
        if self._bm25 is None or not terms:
            return []
        scores = self._bm25.get_scores(terms)
        # Okapi's idf is negative for a term in most passages; a passage must share a term to count
        query_terms = set(terms)
        ranked = sorted(
            (i for i in range(len(self.passages)) if query_terms.intersection(self._tokens[i])),
            key=lambda i: (-float(scores[i]), i),
        )
        return [Hit(self.passages[i], round(float(scores[i]), 4)) for i in ranked[:k]]


def load_passages(*, deal_id) -> list[Passage]:
    """Every page of the deal's ready documents, in upload then page order (the deals app's selector)."""

    return [
        Passage(str(p["document_id"]), p["filename"], int(p["page"]), p["text"]) for p in deal_passages(deal_id=deal_id)
    ]


def load_metrics(*, deal) -> dict[str, dict]:
    """name -> {value, unit, text, source{document_id, filename, page}} from deal intel ({} without it)."""

    try:
        return dict(deal_intel_get(deal=deal).get("metrics") or {})
    except Exception:  # noqa: BLE001 - figures are an enrichment; a draft goes on without them
        logger.exception("deal intel of %s unavailable; drafting without figures", deal.pk)
        return {}

"""Drafters: turn a section's retrieved passages and the deal's figures into cited markdown.

- DefaultDrafter: offline and deterministic (same inputs, same text). Figures from deal intel, then
  the sentences of the best BM25 passages that share the most terms with the section's query, each
  followed by a footnote to its document and page.
- LlmDrafter: a chat model through langchain's init_chat_model (CANVAS_LLM_MODEL), used only when
  configured. It cites passages with [S<n>] markers that are turned into the same footnotes while
  streaming, so every citation points to a real page.

A drafter streams text through `emit(delta)` and asks `should_stop()` between deltas; a reason
(cancelled, time budget) stops it with DraftStopped. The deltas of the offline drafter concatenate
to its markdown; an LLM's may also carry text dropped at the end (footnotes the model wrote itself),
so message_end carries the final text.
Footnote ids are `<section order>.<n>` (`[^3.1]`), unique across the memo's sections.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from canvas.memo import markdown as memo_md
from canvas.runs.synthesis import config, prompts
from canvas.runs.synthesis.retrieval import Hit, Passage, sentences, tokenize

Emit = Callable[[str], None]
ShouldStop = Callable[[], str | None]

MAX_EVIDENCE_SENTENCES = 6
SENTENCES_PER_PASSAGE = 2
MAX_SENTENCE_CHARS = 420
MIN_SENTENCE_WORDS = 5
MIN_RELATIVE_SCORE = 0.2
LLM_DELTA_CHARS = 48

METRIC_LABELS = {
    "purchase_price": "purchase price",
    "noi": "net operating income",
    "cap_rate": "cap rate",
    "units": "unit count",
    "square_feet": "rentable area",
    "occupancy": "occupancy",
    "irr": "IRR",
    "equity_multiple": "equity multiple",
    "ltv": "LTV",
    "dscr": "DSCR",
    "year_built": "year built",
}
# Which figures each kind of section leads with (by section key); others match on their query's words.
SECTION_METRICS = {
    "executive_summary": ("purchase_price", "noi", "cap_rate", "irr", "equity_multiple"),
    "property_overview": ("units", "square_feet", "year_built", "occupancy"),
    "market_analysis": ("occupancy",),
    "rent_roll": ("units", "occupancy"),
    "financial_analysis": ("noi", "cap_rate", "purchase_price"),
    "underwriting": ("irr", "equity_multiple", "cap_rate"),
    "financing": ("ltv", "dscr"),
    "recommendation": ("purchase_price", "irr", "equity_multiple"),
    "returns": ("irr", "equity_multiple"),
    "capital_structure": ("ltv", "dscr"),
    "loan_sizing": ("ltv", "dscr"),
    "valuation": ("cap_rate", "purchase_price"),
    "operating_history": ("noi", "occupancy"),
    "project_program": ("units", "square_feet"),
}
QUERY_METRIC_WORDS = {
    "purchase_price": ("price", "purchase"),
    "noi": ("noi", "net operating"),
    "cap_rate": ("cap rate", "cap"),
    "units": ("units",),
    "square_feet": ("square feet", "sf"),
    "occupancy": ("occupancy",),
    "irr": ("irr",),
    "equity_multiple": ("equity multiple",),
    "ltv": ("ltv",),
    "dscr": ("dscr",),
    "year_built": ("year built",),
}


class DraftFailed(Exception):
    """The drafter cannot write this section (no source material, a model error)."""


class NoMaterial(DraftFailed):
    """Nothing to draft from: no passage matches the section, no deal figure applies, and no analyst notes were
    given. The graph asks for input (a first time) or delivers the section as missing (after the answer)."""


class DraftStopped(Exception):
    """Stopped on request (cancelled, or the run's time budget ran out); `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DraftRequest:
    deal_name: str
    template_key: str
    section_key: str
    title: str
    order: float
    required: bool
    retrieval_query: str
    instructions: str
    hits: list[Hit]
    metrics: dict[str, dict]
    # What an analyst wrote for this section when the run asked for input; cited as `notes_label`.
    notes: str = ""
    notes_label: str = "Analyst notes"

    @property
    def notes_source(self) -> dict:
        """The notes as a cited source: a footnote labelled `notes_label`, no document, no page."""
        return {"document_id": None, "filename": self.notes_label, "page": 0}

    @property
    def footnote_prefix(self) -> str:
        order = self.order
        return f"{int(order)}." if float(order).is_integer() else f"{self.section_key}."


@dataclass
class Draft:
    markdown: str
    sources: list[dict] = field(default_factory=list)
    usage: dict = field(default_factory=dict)

    @property
    def citations(self) -> list[dict]:
        return memo_md.parse_citations(self.markdown)

    @property
    def references(self) -> list[dict]:
        """The citations with the `document_id` of the passages they cite: a filename among the draft's
        sources names its document, unless two cited documents share it."""
        ids: dict[str, set[str]] = {}
        for source in self.sources:
            ids.setdefault(source["filename"], set()).add(str(source["document_id"]))
        named = {filename: next(iter(found)) for filename, found in ids.items() if len(found) == 1}
        return memo_md.with_document_ids(self.citations, named)


def format_metric(name: str, metric: dict) -> str:
    value, unit = float(metric["value"]), metric.get("unit", "")
    if unit == "USD":
        return f"${value:,.0f}"
    if unit == "%":
        return f"{value:g}%"
    if unit == "x":
        return f"{value:g}x"
    if unit == "units":
        return f"{value:,.0f} units"
    if unit == "sf":
        return f"{value:,.0f} sf"
    if unit == "year":
        return f"{value:.0f}"
    return f"{value:g} {unit}".strip()


def relevant_metrics(section_key: str, query: str, metrics: dict[str, dict]) -> list[str]:
    names = list(SECTION_METRICS.get(section_key, ()))
    lowered = f" {query.lower()} "
    for name, words in QUERY_METRIC_WORDS.items():
        if name not in names and any(f" {w} " in lowered or f" {w}" in lowered for w in words):
            names.append(name)
    return [n for n in names if n in metrics]


class Footnotes:
    """Numbers sources by first use: one footnote per (document, page)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self._ids: dict[tuple[str, int], str] = {}
        self._labels: dict[str, str] = {}

    def ref(self, source: dict) -> str:
        key = (str(source.get("filename")), int(source.get("page") or 0))
        note = self._ids.get(key)
        if note is None:
            note = f"{self.prefix}{len(self._ids) + 1}"
            self._ids[key] = note
            # a source without pages (analyst notes) is cited by its name alone
            self._labels[note] = f"{key[0]}, p. {key[1]}" if key[1] else key[0]
        return f"[^{note}]"

    def __len__(self) -> int:
        return len(self._ids)

    def block(self) -> str:
        return "\n".join(f"[^{note}]: {label}" for note, label in self._labels.items())


def has_material(request: DraftRequest) -> bool:
    """Whether there is anything to draft from: a retrieved passage, a deal figure that applies, analyst notes.
    (The offline drafter may still find no usable sentence in the passages: it raises NoMaterial then.)"""
    return bool(
        request.notes.strip()
        or request.hits
        or relevant_metrics(request.section_key, request.retrieval_query, request.metrics)
    )


def _check(should_stop: ShouldStop) -> None:
    reason = should_stop()
    if reason:
        raise DraftStopped(reason)


class DefaultDrafter:
    """Offline and deterministic."""

    name = "default"

    def draft(self, request: DraftRequest, *, emit: Emit, should_stop: ShouldStop) -> Draft:
        """Raises NoMaterial (no passage matched, no figure, no analyst notes), DraftStopped."""
        notes = Footnotes(request.footnote_prefix)
        blocks: list[str] = []
        if request.notes.strip():
            blocks.append(f"{request.notes.strip()}{notes.ref(request.notes_source)}")
        figure_names = relevant_metrics(request.section_key, request.retrieval_query, request.metrics)
        if figure_names:
            parts = [
                f"{METRIC_LABELS.get(n, n)} of {format_metric(n, request.metrics[n])}"
                f"{notes.ref(request.metrics[n]['source'])}"
                for n in figure_names
            ]
            joined = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
            blocks.append(f"Key figures: {joined}.")
        evidence = self._evidence(request)
        if not evidence and not figure_names and not blocks:
            raise NoMaterial(
                f"No passage of the deal's documents matches {request.retrieval_query!r}, and no "
                "deal figure applies to this section."
            )
        if evidence:
            blocks.append("\n".join(f"- {text}{notes.ref(hit.passage.source)}" for text, hit in evidence))
        sources = [{**hit.passage.source, "score": hit.score} for hit in request.hits]
        pieces = []
        for index, block in enumerate(blocks):
            _check(should_stop)
            delta = ("\n\n" if index else "") + block
            pieces.append(delta)
            emit(delta)
        _check(should_stop)
        footer = "\n\n" + notes.block()
        pieces.append(footer)
        emit(footer)
        markdown = "".join(pieces)
        return Draft(
            markdown=markdown,
            sources=sources,
            usage={
                "words": memo_md.word_count(markdown),
                "citations": len(notes),
                "passages": len(request.hits),
                "figures": len(figure_names),
            },
        )

    @staticmethod
    def _evidence(request: DraftRequest) -> list[tuple[str, Hit]]:
        """Up to 6 sentences from the best passages, each sharing enough terms with the query: at
        least 2 when the query has 4 or more terms (1 for the very best passage), in rank order."""
        terms = set(tokenize(f"{request.retrieval_query} {request.instructions}"))
        need = 2 if len(terms) >= 4 else 1
        top = request.hits[0].score if request.hits else 0.0
        chosen: list[tuple[str, Hit]] = []
        seen: set[str] = set()
        for rank, hit in enumerate(request.hits):
            # Okapi's idf goes negative in a tiny corpus (a term on most pages): then rank alone decides
            if rank and top > 0 and hit.score < MIN_RELATIVE_SCORE * top:
                break
            scored = []
            for position, sentence in enumerate(sentences(hit.passage.text)):
                if (
                    sentence.startswith("|")
                    or len(sentence) > MAX_SENTENCE_CHARS
                    or len(sentence.split()) < MIN_SENTENCE_WORDS
                ):
                    continue
                overlap = len(terms.intersection(tokenize(sentence)))
                if overlap >= (1 if rank == 0 else need):
                    scored.append((-overlap, position, sentence))
            for _, _, sentence in sorted(scored)[:SENTENCES_PER_PASSAGE]:
                fingerprint = " ".join(tokenize(sentence))
                if fingerprint in seen:
                    continue
                seen.add(fingerprint)
                text = sentence if sentence[-1] in ".!?" else sentence + "."
                chosen.append((text, hit))
                if len(chosen) >= MAX_EVIDENCE_SENTENCES:
                    return chosen
        return chosen


# --- the LLM drafter -------------------------------------------------------------------------------
MARKER_RE = re.compile(r"\[S(\d{1,3})\]")
MODEL_FOOTNOTE_DEF_RE = re.compile(r"^\[\^[^\]\s]+\]:.*$\n?", re.MULTILINE)


def build_chat_model(spec: str):
    """The chat model of CANVAS_LLM_MODEL ("provider:model"). Tests replace this function."""
    # lazy: langchain's chat-model loader pulls in a provider package, needed only when an LLM is configured
    from langchain.chat_models import init_chat_model

    return init_chat_model(spec, temperature=0)


class _MarkerRewriter:
    """Turns [S<n>] markers into footnote refs as text streams in, holding back a partial marker."""

    def __init__(self, hits: list[Hit], notes: Footnotes) -> None:
        self.hits = hits
        self.notes = notes
        self.pending = ""

    def _rewrite(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            n = int(match.group(1))
            if 1 <= n <= len(self.hits):
                return self.notes.ref(self.hits[n - 1].passage.source)
            return ""  # a marker of no given passage: dropped, never a made-up citation

        return MARKER_RE.sub(replace, text)

    def feed(self, chunk: str) -> str:
        self.pending += chunk
        cut = self.pending.rfind("[")
        if cut != -1 and "]" not in self.pending[cut:] and len(self.pending) - cut <= 6:
            ready, self.pending = self.pending[:cut], self.pending[cut:]
        else:
            ready, self.pending = self.pending, ""
        return self._rewrite(ready)

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return self._rewrite(ready)


class LlmDrafter:
    """A chat model drafts; used only when CANVAS_LLM_MODEL is configured (or a model is passed in)."""

    name = "llm"

    def __init__(self, model=None) -> None:
        self._model = model

    @property
    def model(self):
        if self._model is None:
            self._model = build_chat_model(config.llm_model())
        return self._model

    def draft(self, request: DraftRequest, *, emit: Emit, should_stop: ShouldStop) -> Draft:
        """Raises DraftFailed (the model failed or wrote nothing), DraftStopped."""
        names = relevant_metrics(request.section_key, request.retrieval_query, request.metrics)
        figures = [
            f"{METRIC_LABELS.get(n, n)}: {format_metric(n, request.metrics[n])} "
            f"({request.metrics[n]['source']['filename']}, p. {request.metrics[n]['source']['page']})"
            for n in names
        ]
        hits = list(request.hits)
        if request.notes.strip():
            # the analyst's notes are a source like a page: first, cited by their label
            source = request.notes_source
            hits.insert(0, Hit(Passage("", source["filename"], 0, request.notes.strip()), 1.0))
        passages = [
            f"[S{i}] {hit.passage.filename}"
            + (f", p. {hit.passage.page}" if hit.passage.page else "")
            + f"\n{hit.passage.text[:3000]}"
            for i, hit in enumerate(hits, start=1)
        ]
        messages = prompts.render_section_messages(
            deal_name=request.deal_name,
            template_key=request.template_key,
            title=request.title,
            section_key=request.section_key,
            required=request.required,
            retrieval_query=request.retrieval_query,
            figures=figures,
            passages=passages,
            instructions=request.instructions,
        )
        notes = Footnotes(request.footnote_prefix)
        rewriter = _MarkerRewriter(hits, notes)
        out: list[str] = []
        buffer = ""
        usage: dict = {"input_tokens": 0, "output_tokens": 0}
        last_flush = time.monotonic()

        def send(text: str) -> None:
            if text:
                out.append(text)
                emit(text)

        try:
            for chunk in self.model.stream(messages):
                _check(should_stop)
                meta = getattr(chunk, "usage_metadata", None) or {}
                usage["input_tokens"] += int(meta.get("input_tokens") or 0)
                usage["output_tokens"] += int(meta.get("output_tokens") or 0)
                content = (
                    chunk.content
                    if isinstance(chunk.content, str)
                    else "".join(part.get("text", "") for part in chunk.content if isinstance(part, dict))
                )
                buffer += content
                # coalesce token deltas so a run's stream stays small
                if len(buffer) >= LLM_DELTA_CHARS or "\n" in buffer or time.monotonic() - last_flush > 0.25:
                    send(rewriter.feed(buffer))
                    buffer, last_flush = "", time.monotonic()
        except DraftStopped:
            raise
        except Exception as exc:  # noqa: BLE001 - any provider error fails this section, not the run
            raise DraftFailed(f"The language model failed: {exc.__class__.__name__}: {exc}") from exc
        send(rewriter.feed(buffer) + rewriter.flush())
        body = MODEL_FOOTNOTE_DEF_RE.sub("", "".join(out)).rstrip()
        if not body.strip():
            raise DraftFailed("The language model returned no text.")
        _check(should_stop)
        footer = ("\n\n" + notes.block()) if len(notes) else ""
        if footer:
            emit(footer)
        markdown = body + footer
        sources = [{**hit.passage.source, "score": hit.score} for hit in hits]
        usage.update(
            {
                "words": memo_md.word_count(markdown),
                "citations": len(notes),
                "passages": len(request.hits),
                "figures": len(names),
            }
        )
        return Draft(markdown=markdown, sources=sources, usage=usage)

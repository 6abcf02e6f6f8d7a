"""GET/POST /api/canvas/{deal_id}/brush: check passes over the memo, cached findings, suggestions from them."""

from __future__ import annotations

import pytest

from canvas.memo import markdown as md
from canvas.memo.store import read_memo
from canvas.models import Suggestion, SuggestionStatus
from canvas_project import keys
from canvas_project.redis_client import get_redis
from tests.canvas.conftest import canvas_url, save
from tests.canvas.synthesis_corpus import make_corpus, page_texts
from tests.conftest import ROLES, expected_status

pytestmark = pytest.mark.django_db

MEMO = """## Executive Summary

The purchase price is $40,000,000[^1], a 5.9% cap rate[^1]. The exit cap rate is 6.5%[^1]. Comparable sales traded \
at 5.6% to 6.1% cap rates[^1].

[^1]: Offering Memorandum.pdf, p. 2

## Financial Analysis

Net operating income of $2.45 million is stable.

## Risks and Mitigants

Rates.
"""


@pytest.fixture
def memo(cast):
    make_corpus(cast.deal)
    assert save(cast.client("editor"), cast.deal, MEMO).status_code == 200


def _brush(client, deal, **body):
    return client.post(canvas_url(deal, "brush"), body, format="json")


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_brush_run(cast, role):
    response = _brush(cast.client(role), cast.deal, brush="completeness")
    assert response.status_code == expected_status(role, minimum="editor", ok=201)


@pytest.mark.parametrize("role", ROLES)
def test_role_matrix_brush_list(cast, role):
    response = cast.client(role).get(canvas_url(cast.deal, "brush"))
    assert response.status_code == expected_status(role, minimum="viewer", ok=200)


def test_the_figures_brush_flags_numbers_that_disagree_with_deal_intel(cast, memo):
    body = _brush(cast.client("editor"), cast.deal, brush="figures").json()
    assert body["brush"] == "figures" and body["memo_version"] == 1
    [finding] = body["findings"]  # the cap rate agrees; the exit cap and the comparables' cap rates are not it
    assert (finding["kind"], finding["severity"], finding["section_key"]) == (
        "figure_mismatch",
        "error",
        "executive_summary",
    )
    assert finding["evidence"]["memo_text"] == "$40,000,000" and finding["evidence"]["intel_value"] == 41_500_000
    assert finding["evidence"]["source"]["filename"] == "Offering Memorandum.pdf"
    assert "$41,500,000" in finding["message"]
    assert finding["suggestion"] == {
        "section_key": "executive_summary",
        "kind": "replace",
        "anchor_text": "$40,000,000",
        "occurrence": 1,
        "content": "$41,500,000",
        "comment": finding["suggestion"]["comment"],
    }
    assert finding["suggestion_id"] is None

    # the payload is ready to post as it is; accepting it fixes the memo
    posted = cast.client("commenter").post(canvas_url(cast.deal, "suggestions"), finding["suggestion"], format="json")
    assert posted.status_code == 201, posted.content
    accepted = cast.client("editor").post(
        canvas_url(cast.deal, f"suggestions/{posted.json()['id']}/accept"), {}, format="json"
    )
    assert accepted.status_code == 200
    assert "$41,500,000[^1]" in read_memo(cast.deal.pk).sections["executive_summary"].markdown
    assert _brush(cast.client("editor"), cast.deal, brush="figures").json()["findings"] == []


def test_the_citations_brush_flags_uncited_figures_and_proposes_a_real_page(cast, memo):
    body = _brush(cast.client("editor"), cast.deal, brush="citations").json()
    [finding] = body["findings"]
    assert (finding["kind"], finding["section_key"]) == ("uncited_figure", "financial_analysis")
    assert finding["evidence"]["memo_text"] == "Net operating income of $2.45 million is stable."
    suggestion = finding["suggestion"]
    assert suggestion["kind"] == "insert" and suggestion["anchor_text"] == finding["evidence"]["memo_text"]
    posted = cast.client("editor").post(canvas_url(cast.deal, "suggestions"), suggestion, format="json")
    cast.client("editor").post(canvas_url(cast.deal, f"suggestions/{posted.json()['id']}/accept"), {}, format="json")
    section = read_memo(cast.deal.pk).sections["financial_analysis"]
    [citation] = section.citations
    assert (citation["document"], citation["page"]) in page_texts(cast.deal)
    assert section.markdown.startswith(f"Net operating income of $2.45 million is stable.[^{citation['id']}]")
    assert _brush(cast.client("editor"), cast.deal, brush="citations").json()["findings"] == []


def test_the_completeness_brush_flags_missing_and_thin_required_sections_with_drafts(cast, memo):
    body = _brush(cast.client("editor"), cast.deal, brush="completeness").json()
    kinds = {f["section_key"]: f["kind"] for f in body["findings"]}
    assert kinds["market_analysis"] == kinds["recommendation"] == "missing_section"
    assert kinds["risks"] == kinds["financial_analysis"] == "thin_section"
    assert "rent_roll" not in kinds and "financing" not in kinds  # optional sections
    missing = next(f for f in body["findings"] if f["section_key"] == "market_analysis")
    assert missing["severity"] == "error" and missing["suggestion"]["anchor_text"] == ""
    assert "[^3.2]: Offering Memorandum.pdf, p. 4" in missing["suggestion"]["content"]


def test_create_suggestions_files_every_fix_as_a_pending_suggestion(cast, memo):
    body = _brush(cast.client("editor"), cast.deal, brush="all", create_suggestions=True).json()
    with_fix = [f for f in body["findings"] if f["suggestion"]]
    assert with_fix and all(f["suggestion_id"] for f in with_fix)
    filed = Suggestion.objects.filter(deal=cast.deal, status=SuggestionStatus.PENDING)
    assert {str(s.pk) for s in filed} == {f["suggestion_id"] for f in with_fix}
    assert all(s.author == cast.users["editor"] for s in filed)


def _drafted(cast, key: str) -> str:
    """What the completeness brush drafts for the section (its whole draft, proposed while the section is empty)."""
    body = _brush(cast.client("editor"), cast.deal, brush="completeness", section_key=key).json()
    [finding] = body["findings"]
    assert finding["kind"] == "missing_section"
    return finding["suggestion"]["content"]


def _paragraphs(markdown: str) -> list[str]:
    body = md.FOOTNOTE_DEF_RE.sub("", markdown)
    return [block.strip() for block in body.split("\n\n") if block.strip()]


def _definitions(markdown: str) -> list[tuple[str, str]]:
    return [(m.group("id"), m.group("text").strip()) for m in md.FOOTNOTE_DEF_RE.finditer(markdown)]


def _cited(paragraph: str) -> list[str]:
    return list(dict.fromkeys(m.group("id") for m in md.FOOTNOTE_REF_RE.finditer(paragraph)))


def _accept_thin_section_fix(cast, key: str) -> str:
    """Brush the (thin) section, accept the fix it files, and return the section's text."""
    body = _brush(cast.client("editor"), cast.deal, brush="completeness", section_key=key, create_suggestions=True)
    [finding] = body.json()["findings"]
    assert finding["kind"] == "thin_section" and finding["suggestion_id"], finding
    accepted = cast.client("editor").post(
        canvas_url(cast.deal, f"suggestions/{finding['suggestion_id']}/accept"), {}, format="json"
    )
    assert accepted.status_code == 200, accepted.content
    return read_memo(cast.deal.pk).sections[key].markdown


def test_the_thin_section_fix_adds_only_what_the_section_does_not_have(cast):
    make_corpus(cast.deal)
    draft = _drafted(cast, "recommendation")
    first, *rest = _paragraphs(draft)
    assert rest, draft  # the draft has more to add than the one paragraph written below
    notes = dict(_definitions(draft))
    # the section as someone wrote it from the draft's first paragraph, with the notes that paragraph cites
    written = first + "\n\n" + "\n".join(f"[^{n}]: {notes[n]}" for n in _cited(first))
    response = cast.client("editor").put(
        canvas_url(cast.deal, "sections/recommendation"), {"markdown": written}, format="json"
    )
    assert response.status_code == 200

    text = _accept_thin_section_fix(cast, "recommendation")
    paragraphs, definitions = _paragraphs(text), _definitions(text)
    assert sorted(paragraphs) == sorted(_paragraphs(draft))  # every paragraph of the draft, each once
    assert sorted(definitions) == sorted(_definitions(draft))  # every note defined once, as the draft does
    assert text.startswith(written)


def test_the_thin_section_fix_renumbers_a_note_the_section_defines_differently(cast):
    make_corpus(cast.deal)
    draft = _drafted(cast, "recommendation")
    paragraphs, notes = _paragraphs(draft), dict(_definitions(draft))
    clash = next(n for n in _cited(paragraphs[-1]) if n not in _cited(paragraphs[0]))
    own = f"Our own view: the sponsor is strong.[^{clash}]\n\n[^{clash}]: Underwriting Model.xlsx, p. 1"
    assert notes[clash] != "Underwriting Model.xlsx, p. 1"
    cast.client("editor").put(canvas_url(cast.deal, "sections/recommendation"), {"markdown": own}, format="json")

    text = _accept_thin_section_fix(cast, "recommendation")
    definitions = dict(_definitions(text))
    assert len(definitions) == len(_definitions(text))  # no note id defined twice
    assert definitions[clash] == "Underwriting Model.xlsx, p. 1"  # the section's own note is untouched
    assert text.startswith(f"Our own view: the sponsor is strong.[^{clash}]")
    # the drafted paragraph cites its source under a new id, defined as the draft defines it
    added = next(p for p in _paragraphs(text) if p.startswith(paragraphs[-1][:20]))
    [renamed] = [n for n in _cited(added) if n not in _cited(paragraphs[-1])]
    assert renamed != clash and definitions[renamed] == notes[clash]
    assert added == paragraphs[-1].replace(f"[^{clash}]", f"[^{renamed}]")
    for paragraph in _paragraphs(text):
        assert set(_cited(paragraph)) <= set(definitions), paragraph


def test_a_section_brush_and_the_cached_list(cast, memo):
    client = cast.client("editor")
    first = _brush(client, cast.deal, brush="all").json()
    second = _brush(client, cast.deal, brush="all", section_key="risks").json()
    assert {f["section_key"] for f in second["findings"]} == {"risks"}
    listed = cast.client("viewer").get(canvas_url(cast.deal, "brush")).json()["results"]
    assert [r["brush_id"] for r in listed] == [second["brush_id"], first["brush_id"]]
    assert listed[1]["findings"] == first["findings"]
    only_risks = cast.client("viewer").get(canvas_url(cast.deal, "brush") + "?section_key=risks").json()["results"]
    assert all(f["section_key"] == "risks" for r in only_risks for f in r["findings"])
    redis = get_redis()
    key = keys.brush_key(cast.deal.pk, first["brush_id"])
    assert key.encode() in redis.smembers(keys.index_key(cast.deal.pk))
    assert 0 < redis.ttl(key) <= keys.BRUSH_TTL


def test_brush_validation(cast, memo):
    client = cast.client("editor")
    assert _brush(client, cast.deal, brush="all", section_key="nope").status_code == 404
    response = _brush(client, cast.deal, brush="sparkle")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "brush"]
    response = _brush(client, cast.deal, brush="all", extra=1)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "extra"]


def test_brush_counts_against_the_generate_rate_limit(cast, settings):
    settings.GENERATE_RATE_PER_MINUTE = 1
    settings.GENERATE_RATE_BURST = 1
    client = cast.client("editor")
    assert _brush(client, cast.deal, brush="completeness").status_code == 201
    response = _brush(client, cast.deal, brush="completeness")
    assert response.status_code == 429 and response["Retry-After"]


def test_brush_findings_appear_as_canvas_nodes(cast, memo):
    body = _brush(cast.client("editor"), cast.deal, brush="figures").json()
    [finding] = body["findings"]
    listed = cast.client("viewer").get(canvas_url(cast.deal, "nodes") + "?type=brush_finding").json()
    assert [n["id"] for n in listed["results"]] == [f"brush:{finding['id']}"]
    node = listed["results"][0]
    assert node["status"] == "pending" and node["section_key"] == finding["section_key"]
    assert listed["relationships"][node["id"]] == [{"to": f"section:{finding['section_key']}", "type": "flags"}]
    from canvas.nodes import selectors as node_selectors

    assert node_selectors.canvas_summary_counts(cast.deal)["byType"]["brush_finding"] == 1

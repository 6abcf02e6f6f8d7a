"""Canvas fixtures: a well-written acquisition memo and helpers to call the canvas API."""

from __future__ import annotations

import pytest

from canvas.memo.templates import ACQUISITION


def section_text(title: str, n: int) -> str:
    """A substantial, cited paragraph (about 140 words) with figures."""
    sentence = (
        f"The {title.lower()} review found that the property at 123 Main Street delivers net operating "
        f"income of $2,450,000 on a purchase price of $41,500,000, a 5.9% going-in cap rate. "
    )
    filler = " ".join(["Occupancy has averaged 94% over the trailing twelve months across 240 units."] * 9)
    note = f"[^{n}]: Offering Memorandum.pdf, p. {n + 3}"
    return f"{sentence}{filler} The underwriting supports the business plan.[^{n}]\n\n{note}"


def full_memo() -> str:
    parts = []
    for n, spec in enumerate(ACQUISITION.sections, start=1):
        parts.append(f"## {spec.title}\n\n{section_text(spec.title, n)}\n")
    return "\n".join(parts)


@pytest.fixture
def memo_text() -> str:
    return full_memo()


def canvas_url(deal, suffix: str = "") -> str:
    return f"/api/canvas/{deal.pk}" + (f"/{suffix}" if suffix else "")


def save(client, deal, content: str, base_version=None):
    body = {"content": content}
    if base_version is not None:
        body["base_version"] = base_version
    return client.post(canvas_url(deal, "save"), body, format="json")


@pytest.fixture
def written(cast, memo_text):
    """The cast's deal with the full memo saved once by its owner (version 1, editing)."""
    response = save(cast.client("owner"), cast.deal, memo_text)
    assert response.status_code == 200, response.content
    return response.json()

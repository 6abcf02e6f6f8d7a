"""A small deal corpus for synthesis tests: ready Document rows with DocumentPage text (no upload or
ingestion needed), covering every section of the acquisition template."""

from __future__ import annotations

import hashlib

from deals.models import Deal, Document, DocumentPage, FileState

OM_PAGES = [
    "Riverside Apartments Offering Memorandum. Confidential. Prepared for qualified investors.",
    "Investment thesis: Riverside Apartments is a stabilised 240 units multifamily community in Austin, Texas. "
    "The purchase price is $41,500,000, which reflects a 5.9% cap rate on in-place net operating income. "
    "The sponsor projects a levered IRR of 14.2% and an equity multiple of 1.9x over a five year hold period.",
    "Property description: the property is located at 123 Main Street in the East Riverside submarket. "
    "It was built in 1998 and comprises 240 units across 12 garden-style buildings totalling 210,000 square feet. "
    "Amenities include a pool, a fitness centre and covered parking. The location is two miles from downtown.",
    "Market overview: the East Riverside submarket has vacancy of 5.1%, below the metro average. "
    "Average submarket rents grew 4.2% last year. New supply is limited to 600 units under construction, "
    "while demand from job growth absorbed 1,900 units. Comparable sales traded at 5.6% to 6.1% cap rates.",
    "Rent roll summary: the property is 95% occupied with 228 of 240 units leased. Lease expiration is spread "
    "evenly across the next twelve months. Tenants are predominantly young professionals.",
    "Financial summary: net operating income (NOI) is $2,450,000 on effective gross revenue of $4,300,000. "
    "Operating expenses are $1,850,000, or 43% of revenue. Expenses include taxes, insurance and payroll.",
]
MODEL_PAGES = [
    "Underwriting | Returns. Levered IRR 14.2%. Equity multiple 1.9x. Cash on cash return averages 7.5% over "
    "the hold period. The exit cap rate is assumed at 6.25% in year five.",
    "Financing: the senior loan amount is $28,000,000, a 67.5% LTV, at a fixed interest rate of 5.25%. "
    "Debt service coverage (DSCR) is 1.45x in year one.",
]
MEMO_PAGES = [
    "Risks and mitigants: the key risk is rising insurance costs; the mitigant is a three year fixed policy. "
    "Downside sensitivity shows a 12.0% IRR if rents stay flat. Interest rate risk is mitigated by fixed debt.",
    "Recommendation: we recommend that the investment committee approve the acquisition, subject to "
    "conditions: a satisfactory property condition report and loan commitment. Next steps are legal diligence.",
]

# the acquisition template's required sections: the whole corpus has material for each
REQUIRED = (
    "executive_summary",
    "property_overview",
    "market_analysis",
    "financial_analysis",
    "underwriting",
    "risks",
    "recommendation",
)

DOCUMENTS = (
    ("Offering Memorandum.pdf", "pdf", OM_PAGES),
    ("Underwriting Model.xlsx", "xlsx", MODEL_PAGES),
    ("IC Notes.pdf", "pdf", MEMO_PAGES),
)


def make_document(deal: Deal, filename: str, kind: str, pages: list[str], *, state: str = FileState.READY) -> Document:
    body = "\n".join(pages).encode()
    document = Document.objects.create(
        deal=deal,
        file=f"deals/{deal.pk}/documents/{filename}",
        filename=filename,
        content_type="application/pdf" if kind == "pdf" else "application/octet-stream",
        kind=kind,
        size=len(body),
        sha256=hashlib.sha256(body).hexdigest(),
        state=state,
        pages=len(pages),
    )
    DocumentPage.objects.bulk_create(
        [DocumentPage(document=document, deal=deal, page_number=n, text=text) for n, text in enumerate(pages, start=1)]
    )
    return document


def make_offering_memorandum(deal: Deal) -> Document:
    """The offering memorandum alone: material for most sections, nothing about risks or a recommendation (so a
    run asks for those)."""
    return make_document(deal, "Offering Memorandum.pdf", "pdf", OM_PAGES)


def make_corpus(deal: Deal) -> list[Document]:
    return [make_document(deal, filename, kind, pages) for filename, kind, pages in DOCUMENTS]


def page_texts(deal: Deal) -> dict[tuple[str, int], str]:
    """(filename, page) -> text of every page of the deal."""
    return {
        (p.document.filename, p.page_number): p.text
        for p in DocumentPage.objects.filter(deal=deal).select_related("document")
    }

"""Memo templates: which sections an investment memo of each kind has, in which order.

Each section names the retrieval query its drafter uses against the deal's documents. The keys are
stable identifiers (they appear in URLs such as /sections/{key}); titles are what the memo shows.
"""

from __future__ import annotations

from dataclasses import dataclass

from deals.models import MemoKind


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    order: int
    required: bool
    retrieval_query: str
    drafter: str = "default"


@dataclass(frozen=True)
class MemoTemplate:
    key: str
    name: str
    description: str
    sections: tuple[SectionSpec, ...]

    def section(self, key: str) -> SectionSpec | None:
        return next((s for s in self.sections if s.key == key), None)

    @property
    def required_keys(self) -> tuple[str, ...]:
        return tuple(s.key for s in self.sections if s.required)


def _sections(*rows: tuple[str, str, bool, str]) -> tuple[SectionSpec, ...]:
    return tuple(
        SectionSpec(key=key, title=title, order=index, required=required, retrieval_query=query)
        for index, (key, title, required, query) in enumerate(rows, start=1)
    )


ACQUISITION = MemoTemplate(
    key=MemoKind.ACQUISITION,
    name="Acquisition memo",
    description="Investment committee memo for acquiring a stabilised or value-add income property.",
    sections=_sections(
        ("executive_summary", "Executive Summary", True, "investment thesis recommendation purchase price returns"),
        ("property_overview", "Property Overview", True, "property description location year built units square feet"),
        ("market_analysis", "Market Analysis", True, "submarket rents vacancy supply demand comparables"),
        ("rent_roll", "Rent Roll and Tenancy", False, "rent roll tenants lease expiration occupancy"),
        ("financial_analysis", "Financial Analysis", True, "net operating income cap rate expenses revenue"),
        ("underwriting", "Underwriting and Returns", True, "IRR equity multiple cash on cash exit cap hold period"),
        ("financing", "Financing", False, "loan amount LTV interest rate debt service coverage"),
        ("risks", "Risks and Mitigants", True, "risk mitigant downside sensitivity"),
        ("recommendation", "Recommendation", True, "recommend approve conditions next steps"),
    ),
)

DEVELOPMENT = MemoTemplate(
    key=MemoKind.DEVELOPMENT,
    name="Development memo",
    description="Memo for a ground-up or major redevelopment project, from entitlement to stabilisation.",
    sections=_sections(
        ("executive_summary", "Executive Summary", True, "project summary development budget returns"),
        ("site_and_entitlements", "Site and Entitlements", True, "site zoning entitlements permits approvals"),
        ("project_program", "Project Program", True, "units unit mix square feet amenities design"),
        ("market_analysis", "Market Analysis", True, "absorption rents comparables pipeline demand"),
        ("development_budget", "Development Budget", True, "hard costs soft costs land contingency budget"),
        ("schedule", "Schedule and Milestones", False, "construction schedule milestones completion"),
        ("capital_structure", "Capital Structure", True, "construction loan equity LTC sponsor"),
        ("returns", "Returns", True, "yield on cost IRR equity multiple development spread"),
        ("risks", "Risks and Mitigants", True, "construction risk cost overrun lease-up risk"),
        ("recommendation", "Recommendation", True, "recommend approve conditions"),
    ),
)

REFINANCE = MemoTemplate(
    key=MemoKind.REFINANCE,
    name="Refinance memo",
    description="Credit memo for refinancing an existing asset: collateral, cash flow and loan sizing.",
    sections=_sections(
        ("executive_summary", "Executive Summary", True, "refinance request loan amount purpose"),
        ("property_overview", "Collateral Overview", True, "property collateral location condition"),
        ("operating_history", "Operating History", True, "historical NOI occupancy trailing twelve months"),
        ("valuation", "Valuation", True, "appraisal value cap rate comparable sales"),
        ("loan_sizing", "Loan Sizing", True, "LTV DSCR debt yield loan amount"),
        ("sponsorship", "Sponsorship", False, "sponsor experience net worth liquidity"),
        ("risks", "Risks and Mitigants", True, "maturity rollover interest rate risk"),
        ("recommendation", "Recommendation", True, "recommend approve terms conditions"),
    ),
)

TEMPLATES: dict[str, MemoTemplate] = {t.key: t for t in (ACQUISITION, DEVELOPMENT, REFINANCE)}
DEFAULT_TEMPLATE_KEY = ACQUISITION.key


def get_template(key: str) -> MemoTemplate:
    """The template of that key, falling back to the default for a key no longer offered."""
    return TEMPLATES.get(key) or TEMPLATES[DEFAULT_TEMPLATE_KEY]

"""The prompt templates of the drafters (served as they are by GET /api/canvas/prompts).

The LLM drafter renders SECTION_SYSTEM and SECTION_USER for each section; the passages it may cite
are numbered [S1]..[Sk] and it cites them with those markers, which the drafter turns into footnotes
to the real document and page afterwards (a model never writes a citation itself, so none can point
to a page that does not exist). The offline drafter follows the same citation and figure rules
deterministically.
"""

from __future__ import annotations

from dataclasses import dataclass

CITATION_GUIDELINES = """\
Cite every factual statement and every figure with the marker of the passage it comes from, written \
right after the sentence: [S1], [S2]... Use only the markers of the passages given. Never invent a \
source, a page or a figure. If the passages do not support a statement, leave the statement out."""

FIGURE_GUIDELINES = """\
Figures (purchase price, NOI, cap rate, units, square feet, occupancy, IRR, equity multiple, LTV, DSCR) \
must match the key figures given below exactly, with their unit; when a passage disagrees with a key \
figure, say so instead of choosing silently."""

SECTION_SYSTEM = """\
You are a commercial real-estate investment analyst drafting one section of an investment committee \
memo. Write in concise, neutral prose for an investment committee: short paragraphs or bullet points, \
no headings (the section title is added for you), no preamble.

{citation_guidelines}

{figure_guidelines}"""

SECTION_USER = """\
Deal: {deal_name}
Memo template: {template_key}
Section: {title} ({section_key}){required_note}
What this section covers: {retrieval_query}

Key figures from the deal's documents:
{figures}

Passages retrieved from the deal's documents:
{passages}

{instructions_block}Write the "{title}" section now, in markdown."""

INSTRUCTIONS_BLOCK = """\
Additional instructions from the deal team (follow them unless they contradict the rules above):
{instructions}

"""

REGENERATE_NOTE = """\
A regeneration replaces the section's current text with a new draft written from the same sources; \
the previous text stays restorable from the memo's versions."""


@dataclass(frozen=True)
class PromptTemplate:
    key: str
    title: str
    purpose: str
    template: str
    variables: tuple[str, ...]


PROMPTS: tuple[PromptTemplate, ...] = (
    PromptTemplate(
        "section_system",
        "Section drafter: system prompt",
        "Sets the analyst role and the citation and figure rules for every section.",
        SECTION_SYSTEM,
        ("citation_guidelines", "figure_guidelines"),
    ),
    PromptTemplate(
        "section_user",
        "Section drafter: user prompt",
        "Carries the section, the deal's key figures and the retrieved passages.",
        SECTION_USER,
        (
            "deal_name",
            "template_key",
            "title",
            "section_key",
            "required_note",
            "retrieval_query",
            "figures",
            "passages",
            "instructions_block",
        ),
    ),
    PromptTemplate(
        "instructions_block",
        "Deal team instructions",
        "Inserted into the user prompt when a generate or regenerate carries instructions.",
        INSTRUCTIONS_BLOCK,
        ("instructions",),
    ),
    PromptTemplate(
        "citation_guidelines",
        "Citation guidelines",
        "How passages are cited; markers become footnotes `[^n]: <file>, p. <page>`.",
        CITATION_GUIDELINES,
        (),
    ),
    PromptTemplate(
        "figure_guidelines",
        "Figure guidelines",
        "Figures must agree with deal intel; disagreements are called out.",
        FIGURE_GUIDELINES,
        (),
    ),
    PromptTemplate("regenerate_note", "Regeneration", "What a regeneration does to a section.", REGENERATE_NOTE, ()),
)


def render_section_messages(
    *,
    deal_name: str,
    template_key: str,
    title: str,
    section_key: str,
    required: bool,
    retrieval_query: str,
    figures: list[str],
    passages: list[str],
    instructions: str,
) -> list[tuple[str, str]]:
    """(role, content) messages for one section."""
    system = SECTION_SYSTEM.format(citation_guidelines=CITATION_GUIDELINES, figure_guidelines=FIGURE_GUIDELINES)
    user = SECTION_USER.format(
        deal_name=deal_name,
        template_key=template_key,
        title=title,
        section_key=section_key,
        required_note=" - required" if required else "",
        retrieval_query=retrieval_query,
        figures="\n".join(f"- {line}" for line in figures) or "- (none found)",
        passages="\n\n".join(passages) or "(no passage matched)",
        instructions_block=INSTRUCTIONS_BLOCK.format(instructions=instructions) if instructions.strip() else "",
    )
    return [("system", system), ("human", user)]

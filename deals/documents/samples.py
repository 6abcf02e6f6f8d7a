"""Realistic sample documents, generated: an offering memorandum PDF (text, a rent roll table, a figure)
and an underwriting workbook. `manage.py seed_demo` gives the demo deal the 123 Main Street pair; the
tests build their own deals' documents with the same builders.

reportlab (the `demo` extra, installed by dev.py) writes the PDF; openpyxl and Pillow are dependencies of
the service itself.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field

# (label, value, number format, note): one row of an underwriting workbook's Returns sheet
ReturnsRow = tuple[str, float, str, str | None]


@dataclass(frozen=True)
class PdfPage:
    title: str
    lines: Sequence[str]
    table: Sequence[Sequence[str]] = ()  # drawn as aligned text columns under the lines
    figure: bytes | None = None  # a PNG drawn under the lines (and the table)
    figure_size: tuple[int, int] = (96, 64)


@dataclass(frozen=True)
class Workbook:
    returns: Sequence[ReturnsRow]
    cash_flow: Sequence[tuple[int, float, float]] = field(default_factory=tuple)


def bar_chart_png(values: Sequence[float], *, width: int = 240, height: int = 120) -> bytes:
    """A small bar chart (one bar per value, scaled to the largest), as a PNG."""
    from PIL import Image, ImageDraw  # lazy: Pillow is only needed where a figure is drawn

    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    top = max(values) or 1
    slot = width // max(len(values), 1)
    for index, value in enumerate(values):
        bar = int((height - 10) * value / top)
        draw.rectangle(
            (index * slot + 4, height - bar, (index + 1) * slot - 4, height - 1), fill=(40, 90, 160), outline=(0, 0, 0)
        )
    draw.line((0, height - 1, width, height - 1), fill=(0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def pdf_bytes(pages: Sequence[PdfPage]) -> bytes:
    """A letter-size PDF: per page a bold title, 11 pt lines, then the table's columns and the figure."""
    from reportlab.lib.pagesizes import letter  # lazy: reportlab is the demo extra, not a service dependency
    from reportlab.lib.utils import ImageReader  # lazy: as above
    from reportlab.pdfgen import canvas  # lazy: as above

    out = io.BytesIO()
    pdf = canvas.Canvas(out, pagesize=letter)
    _, height = letter
    for page in pages:
        pdf.setFont("Helvetica-Bold", 16)
        pdf.drawString(72, height - 72, page.title)
        pdf.setFont("Helvetica", 11)
        y = height - 108
        for line in page.lines:
            pdf.drawString(72, y, line)
            y -= 18
        if page.table:
            y -= 24
            for row in page.table:
                for column, cell in enumerate(row):
                    pdf.drawString(72 + column * 140, y, cell)
                y -= 16
        if page.figure is not None:
            figure_width, figure_height = page.figure_size
            y -= figure_height + 26
            pdf.drawImage(ImageReader(io.BytesIO(page.figure)), 72, y, width=figure_width, height=figure_height)
        pdf.showPage()
    pdf.save()
    return out.getvalue()


def xlsx_bytes(workbook: Workbook) -> bytes:
    """A workbook with a Returns sheet (Metric, Value, Note; values keep their number formats) and, when
    given, a Cash flow sheet (Year, NOI, Debt service)."""
    from openpyxl import Workbook as OpenpyxlWorkbook  # lazy: as the digitizer, only where a workbook is built

    book = OpenpyxlWorkbook()
    returns = book.active
    returns.title = "Returns"
    returns.append(["Metric", "Value", "Note"])
    for label, value, number_format, note in workbook.returns:
        returns.append([label, value, note])
        returns.cell(row=returns.max_row, column=2).number_format = number_format
    if workbook.cash_flow:
        cash_flow = book.create_sheet("Cash flow")
        cash_flow.append(["Year", "NOI", "Debt service"])
        for row in workbook.cash_flow:
            cash_flow.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


# --- the demo deal: 123 Main Street, a 240-unit garden-style multifamily acquisition ----------------------
DEMO_OM_FILENAME = "123 Main Street - Offering Memorandum.pdf"
DEMO_UNDERWRITING_FILENAME = "123 Main Street - Underwriting Model.xlsx"

_DEMO_OCCUPANCY = (91.0, 92.5, 93.0, 94.5, 95.0, 95.5)


def demo_offering_memorandum() -> bytes:
    return pdf_bytes(
        (
            PdfPage(
                "123 Main Street - Offering Memorandum",
                (
                    "123 Main Street is a 240-unit garden-style multifamily community in Columbus, Ohio.",
                    "Unpriced offering; guidance is $38,400,000, or $160,000 per unit.",
                    "The investment thesis is a light value-add: renovate 120 classic units over three years.",
                    "Renovated units have leased at a $185 monthly premium over classic units since 2024.",
                ),
            ),
            PdfPage(
                "Property Description",
                (
                    "Built in 2001, the property has twelve three-story buildings on 14.2 acres.",
                    "Net rentable area is 218,400 square feet, an average unit size of 910 square feet.",
                    "Occupancy is 95.5% as of the October rent roll, up in each of the last six quarters.",
                    "Amenities include a pool, a fitness center, a dog park and 310 surface parking spaces.",
                ),
                figure=bar_chart_png(_DEMO_OCCUPANCY),
                figure_size=(240, 120),
            ),
            PdfPage(
                "Market Analysis",
                (
                    "The Northeast Columbus submarket has 4.1% vacancy and average effective rents of $1,395.",
                    "Submarket rents grew 3.8% last year; new supply is 620 units, 1.9% of inventory.",
                    "Demand: a new semiconductor plant and distribution employers within 20 minutes.",
                    "Comparables: Oak Hollow sold at $171,000 per unit, Linden Park at $158,500 per unit.",
                ),
            ),
            PdfPage(
                "Rent Roll Summary",
                (
                    "The rent roll shows 229 occupied units; leases expire evenly over twelve months.",
                    "No single tenant holds more than one unit; average lease term is 12.4 months.",
                ),
                table=(
                    ("Unit type", "Count", "Avg rent"),
                    ("1 bed / 1 bath", "96", "$1,195"),
                    ("2 bed / 2 bath", "120", "$1,460"),
                    ("3 bed / 2 bath", "24", "$1,780"),
                ),
            ),
            PdfPage(
                "Financial Overview",
                (
                    "Trailing twelve month net operating income is $2,290,000 on revenue of $4,060,000.",
                    "At guidance this is a 5.96% going-in cap rate; expenses are 43.6% of revenue.",
                    "Real estate taxes were reassessed in 2025 and are fully reflected in the expenses.",
                ),
            ),
            PdfPage(
                "Risks and Mitigants",
                (
                    "Risk: renovation premiums may compress if new supply delivers faster than expected.",
                    "Mitigant: the plan is phased, and renovations pause if premiums fall below $125.",
                    "Risk: insurance costs rose 22% last year; sensitivity assumes a further 15% increase.",
                    "Downside: at a 6.5% exit cap rate, levered returns stay above 11%.",
                ),
            ),
            PdfPage(
                "Recommendation",
                (
                    "We recommend that the investment committee approve the acquisition at up to $38,400,000.",
                    "Conditions: a satisfactory property condition report and insurance quotes within budget.",
                    "Next steps: submit the letter of intent, open the loan application, start due diligence.",
                ),
            ),
        )
    )


def demo_underwriting_workbook() -> bytes:
    return xlsx_bytes(
        Workbook(
            returns=(
                ("Purchase price", 38_400_000, '"$"#,##0', "Guidance"),
                ("Levered IRR", 0.158, "0.0%", "5-year hold"),
                ("Equity multiple", 1.92, '0.00"x"', None),
                ("Cash on cash (year 1)", 0.061, "0.0%", None),
                ("Exit cap rate", 0.06, "0.00%", "Year 5"),
                ("Loan amount", 24_960_000, '"$"#,##0', "Agency, 65% LTV"),
                ("Interest rate", 0.0575, "0.00%", "Fixed, 10-year term"),
                ("DSCR", 1.38, '0.00"x"', "Year 1"),
            ),
            cash_flow=tuple(
                (year, noi, 1_748_000) for year, noi in enumerate((2_290_000, 2_410_000, 2_560_000, 2_690_000), 1)
            ),
        )
    )


DEMO_DOCUMENTS = (
    (DEMO_OM_FILENAME, demo_offering_memorandum),
    (DEMO_UNDERWRITING_FILENAME, demo_underwriting_workbook),
)

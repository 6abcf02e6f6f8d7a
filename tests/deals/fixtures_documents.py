"""Builders of real test documents: PDFs and workbooks (deals.documents.samples), DOCX (python-docx), CSV."""

from __future__ import annotations

import io
import zipfile

from deals.documents.samples import PdfPage, Workbook, pdf_bytes, xlsx_bytes

OM_PAGES = (
    # page 1
    (
        "Riverside Apartments - Offering Memorandum",
        [
            "Riverside Apartments is a garden-style multifamily community in Austin, Texas.",
            "Purchase price: $41,500,000, or $172,917 per unit.",
            "The sponsor is seeking an all-cash close within 45 days.",
        ],
    ),
    # page 2
    (
        "Financial Overview",
        [
            "The property produces in-place NOI of $2,450,000 on trailing twelve month collections.",
            "At the asking price this represents a going-in cap rate of 5.9%.",
            "Operating expenses have grown 3% a year since 2019.",
        ],
    ),
    # page 3
    (
        "Property Description",
        [
            "The community comprises 240 units in twelve three-story buildings, built in 1998.",
            "Net rentable area is 212,500 square feet; occupancy 94% as of the latest rent roll.",
            "Amenities include a pool, a fitness center and covered parking.",
        ],
    ),
)

RENT_TABLE = [
    ["Unit type", "Count", "Avg rent"],
    ["1 bed", "120", "$1,250"],
    ["2 bed", "96", "$1,610"],
    ["3 bed", "24", "$2,050"],
]


def png_bytes(width: int = 96, height: int = 64, color=(200, 30, 30)) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (width, height), color)
    for x in range(width):  # a diagonal line, so the image is not one flat colour
        image.putpixel((x, min(height - 1, x * height // width)), (0, 0, 0))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def offering_memorandum_pdf(*, with_image: bool = True, pages=OM_PAGES, rent_table: bool = True) -> bytes:
    """A multi-page PDF with real deal text, a drawn rent table on the last page and a small figure."""
    return pdf_bytes(
        [
            PdfPage(
                title,
                lines,
                table=RENT_TABLE if number == len(pages) and rent_table else (),
                figure=png_bytes() if number == 1 and with_image else None,
            )
            for number, (title, lines) in enumerate(pages, start=1)
        ]
    )


def underwriting_xlsx() -> bytes:
    """An underwriting model: a returns sheet (IRR 14.2%, equity multiple 1.85x, LTV 65%) and a cash flow."""
    return xlsx_bytes(
        Workbook(
            returns=(
                ("Purchase price", 41_500_000, '"$"#,##0', "Asking"),
                ("Levered IRR", 0.142, "0.0%", "5-year hold"),
                ("Equity multiple", 1.85, '0.00"x"', None),
                ("LTV", 0.65, "0%", "Senior loan"),
                ("DSCR", 1.45, '0.00"x"', "Year 1"),
            ),
            cash_flow=tuple((year, noi, 1_690_000) for year, noi in enumerate((2_450_000, 2_523_500, 2_599_205), 1)),
        )
    )


def memo_docx() -> bytes:
    from docx import Document

    document = Document()
    document.add_heading("Investment committee notes", level=1)
    document.add_paragraph("The property was built in 1998 and is 94% occupied.")
    table = document.add_table(rows=2, cols=2)
    table.cell(0, 0).text = "Metric"
    table.cell(0, 1).text = "Value"
    table.cell(1, 0).text = "DSCR"
    table.cell(1, 1).text = "1.45x"
    document.add_paragraph("Closing is expected in the second quarter.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def rent_roll_csv() -> bytes:
    lines = ["unit,beds,rent,status"] + [f"{100 + n},{1 + n % 3},{1200 + n * 5},occupied" for n in range(40)]
    return ("\n".join(lines) + "\n").encode()


def long_text(chars: int = 7000) -> bytes:
    paragraph = "Riverside sits two miles from downtown with strong job growth and limited new supply. "
    paragraphs = []
    while sum(len(p) + 2 for p in paragraphs) < chars:
        paragraphs.append(paragraph * 4)
    return "\n\n".join(paragraphs).encode()


def exe_bytes() -> bytes:
    return b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 200


def plain_zip() -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("readme.txt", "not an office document")
    return out.getvalue()


def corrupt_pdf() -> bytes:
    return b"%PDF-1.7\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\ngarbage garbage\n%%EOF\n"

"""An invoice as PDF, drawn with fpdf2 (a well-kept pure-Python library).

The PDF uses the core Helvetica font, so it needs no font file on the machine; text
outside Windows-1252 is written without its accents (Turkish ş -> s, ı -> i). A draft is
marked DRAFT across the page and carries no number. Rendering is CPU work of a few
milliseconds per page: callers in an event loop may run it in a thread for big invoices.
"""

from __future__ import annotations

import unicodedata

from fpdf import FPDF

from metering.billing.invoices import Invoice, Status
from metering.billing.money import format_amount
from metering.money import format_credits

_SPECIAL = str.maketrans({"ı": "i", "İ": "I", "₺": "TRY", "€": "EUR"})


def _latin(text: str) -> str:
    """Text the core font can draw: Windows-1252, accents dropped where needed."""
    text = text.translate(_SPECIAL)
    try:
        text.encode("cp1252")
        return text
    except UnicodeEncodeError:
        decomposed = unicodedata.normalize("NFKD", text)
        plain = "".join(c for c in decomposed if not unicodedata.combining(c))
        return plain.encode("cp1252", errors="replace").decode("cp1252")


def render_invoice_pdf(invoice: Invoice, *, tenant_name: str, issuer_name: str = "voicegw"
                       ) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin(f"Invoice {invoice.number or 'DRAFT'}"))
    pdf.add_page()
    draft = invoice.status is Status.DRAFT
    if draft:
        pdf.set_font("Helvetica", "B", 72)
        pdf.set_text_color(220, 220, 220)
        with pdf.rotation(35, x=105, y=150):
            pdf.text(45, 170, "DRAFT")
        pdf.set_text_color(0, 0, 0)
    pdf.set_font("Helvetica", "B", 18)
    title = "DRAFT invoice" if draft else f"Invoice {invoice.number}"
    pdf.cell(0, 10, _latin(title), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 11)
    status = "" if draft else f"  -  {invoice.status.value}"
    for text in (f"{issuer_name}", f"Billed to: {tenant_name}",
                 f"Period: {invoice.period}{status}", f"Invoice id: {invoice.id}",
                 f"Currency: {invoice.currency.code}"):
        pdf.cell(0, 6, _latin(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    cur = invoice.currency
    with pdf.table(col_widths=(90, 25, 35, 35), text_align=("LEFT", "RIGHT", "RIGHT", "RIGHT"),
                   line_height=7) as table:
        table.row(["Description", "Quantity", "Unit price", "Amount"])
        for line in invoice.lines:
            table.row([_latin(line.description), str(line.quantity),
                       format_amount(line.unit_price, cur), format_amount(line.amount, cur)])
    pdf.ln(4)
    pdf.set_font("Helvetica", "B", 12)
    pdf.cell(0, 8, f"Total: {format_amount(invoice.total, cur)} {cur.code}",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    cps = "-" if invoice.cost_per_success is None else f"{invoice.cost_per_success} {cur.code}"
    pdf.cell(0, 6, f"Successes: {invoice.successes}; cost per success: {cps}",
             new_x="LMARGIN", new_y="NEXT")
    if invoice.credits_used:
        used = ", ".join(f"{meter} {format_credits(micro)}"
                         for meter, micro in invoice.credits_used.items())
        pdf.multi_cell(0, 5, _latin(f"Credits used (informational): {used}"))
    return bytes(pdf.output())

"""Build the binary documents of the sample corpus in ``data/samples/``.

The corpus describes Northwind Labs, a fictional software company, and exists so the Quick
start and the end-to-end tests have realistic files with checkable facts. The Markdown and HTML
samples are hand-written; the formats below need a library to write, so their text lives here
(not in side files, which an ingest of the folder would pick up as duplicates).

Every date and metadata field is fixed and every zip member gets a fixed timestamp, so running
the script again rewrites the same bytes for the same library versions.

    python scripts/make_samples.py            # rewrite data/samples/
    python scripts/make_samples.py --out DIR  # write somewhere else
"""

from __future__ import annotations

import argparse
import io
import re
import textwrap
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from email.policy import default as default_email_policy
from email.utils import format_datetime
from pathlib import Path
from typing import Literal

SAMPLES_DIR = Path(__file__).resolve().parents[1] / "data" / "samples"
COMPANY = "Northwind Labs"

# Office formats are zip archives; a fixed member timestamp keeps re-runs byte-identical.
ZIP_TIMESTAMP = (2025, 1, 1, 0, 0, 0)
_CORE_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")

BlockKind = Literal["title", "h1", "h2", "p", "bullet"]


@dataclass(frozen=True, slots=True)
class Block:
    """One paragraph-level piece of a prose document, rendered by each format its own way."""

    kind: BlockKind
    text: str


def _blocks(*items: tuple[BlockKind, str]) -> tuple[Block, ...]:
    return tuple(Block(kind, text) for kind, text in items)


# --------------------------------------------------------------------------------------------
# HR policy (PDF). Core PDF fonts are Latin-1 only: no curly quotes, dashes or euro sign.
# --------------------------------------------------------------------------------------------

HR_POLICY_FILE = "hr-policy.pdf"
HR_POLICY_TITLE = "Northwind Labs People Policy: Leave, Remote Work and Expenses"
HR_POLICY_DATE = datetime(2025, 3, 1, 9, 0, tzinfo=timezone.utc)
HR_POLICY_FOOTER = "Northwind Labs - Policy HR-07 - Internal"

HR_POLICY: tuple[Block, ...] = _blocks(
    ("title", HR_POLICY_TITLE),
    ("p", "Policy HR-07 | Version 3.2 | Effective 1 March 2025 | Owner: Hannah Cole, "
          "Director of People Operations"),
    ("h1", "1. Purpose and scope"),
    ("p", "This policy sets out how leave, remote work and business expenses work at Northwind "
          "Labs. It applies to all permanent and fixed-term employees in every country where we "
          "operate, including employees on probation. Contractors are covered by their own "
          "agreements. Where local law grants more generous terms, local law prevails."),
    ("h1", "2. Leave"),
    ("h2", "2.1 Annual leave"),
    ("p", "Employees accrue 25 days of paid annual leave per calendar year, earned at 2.08 days "
          "for each month of service. Part-time employees accrue leave pro rata to their "
          "contracted hours. Public holidays are granted in addition to annual leave and follow "
          "the calendar of the employee's country of employment."),
    ("p", "Up to 5 unused days may be carried over into the next calendar year. Carried-over "
          "days must be taken by 31 March; any that remain after that date lapse. Annual leave "
          "cannot be exchanged for pay except when employment ends."),
    ("p", "Requests for more than 5 consecutive working days of leave must be submitted in the "
          "HR portal at least 4 weeks in advance. Shorter requests need 5 working days' notice. "
          "Line managers answer leave requests within 3 working days."),
    ("h2", "2.2 Sick leave"),
    ("p", "Employees receive 12 days of fully paid sick leave per calendar year. Report sickness "
          "to your manager before 10:00 on the first day of absence. A medical certificate is "
          "required from the fourth consecutive day of absence."),
    ("h2", "2.3 Parental leave"),
    ("p", "The primary caregiver of a newborn or newly adopted child is entitled to 20 weeks of "
          "parental leave at full pay. The secondary caregiver is entitled to 6 weeks at full "
          "pay, which may be taken in up to three blocks within the first 12 months after the "
          "birth or adoption. Employees become eligible after 6 months of continuous service."),
    ("p", "On returning from parental leave, employees may work an 80 per cent schedule at full "
          "pay for their first 4 weeks back."),
    ("h2", "2.4 Other paid leave"),
    ("bullet", "Bereavement leave: 5 days on the death of a close family member."),
    ("bullet", "Volunteering: 2 paid days per calendar year for work with a registered charity."),
    ("bullet", "Jury service and other civic duties: paid in full for the time required."),
    ("h2", "2.5 Sabbaticals"),
    ("p", "After 5 years of continuous service, employees may take an unpaid sabbatical of up to "
          "3 months, once in every 5-year period. Apply to your department head at least 3 "
          "months before the planned start. Your role, salary band and benefits are kept during "
          "the sabbatical, but annual leave does not accrue."),
    ("h1", "3. Remote work"),
    ("p", "Northwind Labs is a hybrid company. Employees may work remotely for up to 3 days per "
          "week. Tuesdays and Thursdays are office anchor days, when teams meet in person. "
          "Everyone should be reachable during the core collaboration hours of 10:00 to 15:00 in "
          "their local time zone."),
    ("h2", "3.1 Working from another country"),
    ("p", "Employees may work from a country other than their country of employment for up to "
          "30 calendar days per year. This needs prior approval from People Operations, "
          "requested at least 2 weeks before travel. Longer stays require a tax and immigration "
          "review and are rarely approved."),
    ("h2", "3.2 Equipment and allowances"),
    ("p", "Each employee receives a one-time home office allowance of EUR 600 for a desk, chair "
          "or monitor, plus an internet allowance of EUR 40 per month paid with salary. Company "
          "laptops must be used for all work; personal devices may access only email and chat, "
          "through the managed mobile app."),
    ("h2", "3.3 Security when working remotely"),
    ("bullet", "Use public Wi-Fi only with the company VPN connected."),
    ("bullet", "Lock your screen whenever you step away from your device."),
    ("bullet", "Do not print company documents at home."),
    ("h1", "4. Travel and expenses"),
    ("p", "Spend company money as if it were your own. Book travel through the travel desk "
          "(travel@northwindlabs.example) at least 14 days in advance where possible."),
    ("h2", "4.1 Spending limits"),
    ("bullet", "Flights: economy class for flights under 6 hours; premium economy for flights of "
               "6 hours or longer. Business class is never reimbursed."),
    ("bullet", "Trains: standard class; first class is allowed for journeys over 3 hours."),
    ("bullet", "Hotels: up to EUR 180 per night, or EUR 240 per night in London, Paris, New York, "
               "Tokyo and Singapore."),
    ("bullet", "Meals while travelling: up to EUR 60 per day, including tips. Alcohol is not "
               "reimbursed."),
    ("bullet", "Client entertainment: up to EUR 90 per person, with the names of all guests on "
               "the claim."),
    ("bullet", "Taxis: allowed when public transport is unavailable or after 21:00."),
    ("bullet", "Private car use: EUR 0.30 per kilometre."),
    ("h2", "4.2 Approval rules"),
    ("p", "Expenses up to EUR 500 need approval from your direct manager. Expenses from EUR 500 "
          "to EUR 5,000 also need approval from your department head. Expenses above EUR 5,000 "
          "require written approval from the Chief Financial Officer, Priya Raman, before the "
          "money is spent. Splitting one purchase into smaller claims to stay under a limit is a "
          "breach of this policy."),
    ("h2", "4.3 Claims and reimbursement"),
    ("p", "Submit claims in the expenses portal within 30 days of the expense and attach an "
          "itemised receipt for every item above EUR 25. Approved claims are reimbursed with the "
          "monthly payroll, which runs on the 25th of each month; claims approved after the 18th "
          "are paid the following month. Claims older than 90 days are not reimbursed."),
    ("p", "Corporate cards are issued to employees who travel more than 4 times a year, with a "
          "monthly limit of EUR 3,000. Card transactions need the same receipts and approvals as "
          "any other expense."),
    ("h2", "4.4 Travel insurance and safety"),
    ("p", "Every business trip is covered by the company travel insurance, policy number "
          "NWL-TRV-2025-0419. The insurer's emergency assistance line, +44 20 7946 0112, is "
          "staffed 24 hours a day. Trips to countries that the security team rates as high risk "
          "need its written approval before booking."),
    ("h1", "5. Breaches of this policy"),
    ("p", "Claims that break these rules are returned unpaid. Deliberate misuse of company money "
          "or of leave is handled through the disciplinary procedure and may lead to dismissal; "
          "amounts paid in error are recovered from the next salary payment."),
    ("h1", "6. Questions and review"),
    ("p", "Questions about this policy go to People Operations at people@northwindlabs.example. "
          "The policy is reviewed every year; the next review is due on 1 March 2026."),
)


def build_hr_policy_pdf(path: Path) -> None:
    from fpdf import FPDF
    from fpdf.enums import XPos, YPos

    class PolicyPdf(FPDF):
        def footer(self) -> None:
            self.set_y(-15)
            self.set_font("Helvetica", size=8)
            self.cell(0, 10, f"{HR_POLICY_FOOTER} - Page {self.page_no()} of {{nb}}", align="C")

    pdf = PolicyPdf(format="A4")
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.set_title(HR_POLICY_TITLE)
    pdf.set_author("Northwind Labs People Operations")
    pdf.set_subject("Leave, remote work and expense rules for employees")
    pdf.set_keywords("annual leave, parental leave, remote work, expenses, approvals")
    pdf.set_creator(COMPANY)
    pdf.set_lang("en")
    pdf.set_creation_date(HR_POLICY_DATE)
    pdf.add_page()

    def write(text: str, size: float, style: str = "", indent: float = 0, gap: float = 2) -> None:
        pdf.set_font("Helvetica", style=style, size=size)
        pdf.set_x(pdf.l_margin + indent)
        # Left-aligned, not justified: justified lines extract with stretched, doubled spaces.
        pdf.multi_cell(pdf.epw - indent, size * 0.5, text, align="L",
                       new_x=XPos.LMARGIN, new_y=YPos.NEXT)
        pdf.ln(gap)

    for block in HR_POLICY:
        if block.kind == "title":
            write(block.text, 16, "B", gap=3)
        elif block.kind == "h1":
            pdf.ln(2)
            pdf.start_section(block.text, level=0)
            write(block.text, 13, "B")
        elif block.kind == "h2":
            pdf.start_section(block.text, level=1)
            write(block.text, 11.5, "B", gap=1)
        elif block.kind == "bullet":
            write(f"- {block.text}", 10.5, indent=4, gap=1)
        else:
            write(block.text, 10.5)
    pdf.output(str(path))


# --------------------------------------------------------------------------------------------
# Meeting notes (DOCX)
# --------------------------------------------------------------------------------------------

MEETING_FILE = "eng-leadership-meeting-2025-10-08.docx"
MEETING_TITLE = "Engineering Leadership Meeting - 8 October 2025"
MEETING_DATE = datetime(2025, 10, 8, 16, 0)

MEETING_NOTES: tuple[Block, ...] = _blocks(
    ("title", MEETING_TITLE),
    ("p", "Date: Wednesday 8 October 2025, 14:00-15:30 CET. Location: Fjord meeting room and "
          "video call. Chair: Daniel Mercer (VP Engineering). Notes: Kenji Watanabe."),
    ("p", "Attendees: Daniel Mercer, Amara Okafor (Engineering Manager, Platform), Lukas Brandt "
          "(Site Reliability Lead), Sofia Lindqvist (Head of Security), Elena Vasquez (Head of "
          "Product), Kenji Watanabe (Finance Business Partner)."),
    ("h1", "Agenda"),
    ("bullet", "Review of Q3 2025 incidents"),
    ("bullet", "Plan for the billing service move to Kubernetes"),
    ("bullet", "Year-end code freeze"),
    ("bullet", "Site reliability hiring for 2026"),
    ("bullet", "Retirement of the Relay v1 API"),
    ("h1", "Discussion"),
    ("h2", "Q3 incidents"),
    ("p", "Lukas reported 4 SEV1 incidents in Q3 2025, down from 7 in Q2. The longest lasted "
          "2 hours 10 minutes on 19 August, when a backlog of payment webhooks delayed invoice "
          "emails. All four postmortems are published; 11 of their 14 follow-up tasks are done."),
    ("h2", "Billing service and Kubernetes"),
    ("p", "The billing service is the last workload still running on the legacy virtual machine "
          "fleet. Moving it to the k8s-prod-2 cluster lets us shut the fleet down, which saves "
          "about EUR 8,400 per month in hosting. Amara asked that the cut-over happen outside "
          "the invoice run on the first working day of each month."),
    ("h2", "Code freeze and hiring"),
    ("p", "The group agreed that the freeze should start before the December holidays rather "
          "than on the 20th as last year, to leave more buffer. Finance confirmed budget for two "
          "additional site reliability engineers from Q1 2026."),
    ("h1", "Decisions"),
    ("bullet", "Decision: the billing service moves from the legacy VM fleet to the k8s-prod-2 "
               "Kubernetes cluster before the year-end code freeze."),
    ("bullet", "Decision: the year-end code freeze runs from 15 December 2025 to 5 January 2026. "
               "Only SEV1 fixes approved by the VP Engineering may ship during the freeze."),
    ("bullet", "Decision: hire 2 site reliability engineers in Q1 2026."),
    ("bullet", "Decision: customers get notice of the Relay v1 API retirement on 1 December 2025."),
    ("bullet", "Decision: hardware security keys become mandatory for production access from "
               "1 December 2025."),
    ("h1", "Action items"),
    ("bullet", "Lukas Brandt owns the billing service migration to k8s-prod-2: cut-over plan due "
               "24 October 2025, migration complete by 28 November 2025."),
    ("bullet", "Sofia Lindqvist: issue hardware security keys to all engineers with production "
               "access and rotate the shared service-account credentials by 14 November 2025."),
    ("bullet", "Amara Okafor: open two site reliability engineer job requisitions by "
               "17 October 2025."),
    ("bullet", "Elena Vasquez: draft the customer notice for the v1 API retirement by "
               "21 November 2025."),
    ("bullet", "Kenji Watanabe: confirm the hosting savings from the VM fleet shutdown in the "
               "December forecast by 12 December 2025."),
    ("h1", "Next meeting"),
    ("p", "Wednesday 22 October 2025, 14:00 CET, Fjord meeting room. Lukas will present the "
          "billing service cut-over plan."),
)


def build_meeting_notes_docx(path: Path) -> None:
    from docx import Document

    document = Document()
    for block in MEETING_NOTES:
        if block.kind == "title":
            document.add_heading(block.text, level=0)
        elif block.kind in ("h1", "h2"):
            document.add_heading(block.text, level=1 if block.kind == "h1" else 2)
        elif block.kind == "bullet":
            document.add_paragraph(block.text, style="List Bullet")
        else:
            document.add_paragraph(block.text)

    props = document.core_properties
    props.title = MEETING_TITLE
    props.subject = "Decisions and action items"
    props.author = "Kenji Watanabe"
    props.last_modified_by = "Kenji Watanabe"
    props.keywords = "meeting notes, decisions, action items"
    props.comments = ""
    props.category = "Meeting notes"
    props.created = MEETING_DATE
    props.modified = MEETING_DATE
    props.last_printed = MEETING_DATE
    props.revision = 1
    document.save(str(path))
    _freeze_zip(path)


# --------------------------------------------------------------------------------------------
# Quarterly figures (XLSX)
# --------------------------------------------------------------------------------------------

FIGURES_FILE = "quarterly-figures-2025.xlsx"
FIGURES_TITLE = "Northwind Labs Quarterly Figures 2025"
FIGURES_DATE = datetime(2025, 10, 10, 12, 0)

REGIONAL_HEADER = ("Region", "Quarter", "Revenue (EUR)", "New customers", "Churn (%)")
REGIONAL_ROWS: tuple[tuple[str, str, int, int, float], ...] = (
    ("EMEA", "Q1 2025", 4_210_000, 38, 2.1),
    ("EMEA", "Q2 2025", 4_480_000, 41, 1.9),
    ("EMEA", "Q3 2025", 4_935_000, 47, 1.7),
    ("North America", "Q1 2025", 5_120_000, 44, 2.4),
    ("North America", "Q2 2025", 5_305_000, 39, 2.6),
    ("North America", "Q3 2025", 5_610_000, 52, 2.2),
    ("APAC", "Q1 2025", 1_640_000, 21, 3.1),
    ("APAC", "Q2 2025", 1_795_000, 24, 2.8),
    ("APAC", "Q3 2025", 1_980_000, 29, 3.4),
    ("LATAM", "Q1 2025", 620_000, 9, 4.2),
    ("LATAM", "Q2 2025", 705_000, 12, 3.9),
    ("LATAM", "Q3 2025", 760_000, 11, 3.6),
)

HEADCOUNT_HEADER = ("Department", "Headcount on 30 Sep 2025", "Open roles")
HEADCOUNT_ROWS: tuple[tuple[str, int, int], ...] = (
    ("Engineering", 148, 9),
    ("Product and Design", 22, 2),
    ("Sales", 64, 6),
    ("Customer Success", 37, 3),
    ("People and Finance", 19, 1),
)


def build_quarterly_xlsx(path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    workbook = Workbook()
    regional = workbook.active
    regional.title = "Regional results"
    regional.append(REGIONAL_HEADER)
    for row in REGIONAL_ROWS:
        regional.append(row)
    for cell in regional["C"][1:]:
        cell.number_format = "#,##0"
    for cell in regional["E"][1:]:
        cell.number_format = "0.0"

    headcount = workbook.create_sheet("Headcount")
    headcount.append(HEADCOUNT_HEADER)
    for row in HEADCOUNT_ROWS:
        headcount.append(row)
    headcount.append(("Total", sum(r[1] for r in HEADCOUNT_ROWS), sum(r[2] for r in HEADCOUNT_ROWS)))

    for sheet, widths in ((regional, (16, 10, 15, 15, 10)), (headcount, (22, 24, 12))):
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        for letter, width in zip("ABCDE", widths):
            sheet.column_dimensions[letter].width = width
        sheet.freeze_panes = "A2"

    props = workbook.properties
    props.title = FIGURES_TITLE
    props.subject = "Revenue, new customers and churn by region; headcount by department"
    props.creator = "Northwind Labs Finance"
    props.lastModifiedBy = "Northwind Labs Finance"
    props.created = FIGURES_DATE
    workbook.save(str(path))
    _freeze_zip(path, modified=FIGURES_DATE)


# --------------------------------------------------------------------------------------------
# Vendor renewal thread (EML). Bodies are wrapped to 72 columns as a mail client would, which
# also keeps them 7bit (no quoted-printable) so the file stays readable.
# --------------------------------------------------------------------------------------------

EMAIL_FILE = "vendor-renewal-brightline.eml"
EMAIL_DOMAIN = "northwindlabs.example"


@dataclass(frozen=True, slots=True)
class Mail:
    """One message of the thread; the builder quotes older messages under newer ones."""

    sender: str
    sent: datetime
    paragraphs: tuple[str, ...]


def _address(name: str) -> str:
    return f"{name} <{name.lower().replace(' ', '.')}@{EMAIL_DOMAIN}>"


def wrap_paragraphs(paragraphs: Sequence[str], width: int = 72) -> str:
    """Wrap prose paragraphs; lines starting with "- " stay separate list entries."""
    wrapped = []
    for paragraph in paragraphs:
        lines = paragraph.split("\n")
        wrapped.append("\n".join(
            textwrap.fill(line, width, subsequent_indent="  " if line.startswith("- ") else "")
            for line in lines
        ))
    return "\n\n".join(wrapped)


def quote(text: str) -> str:
    return "\n".join(">" if not line else (">" + line if line.startswith(">") else "> " + line)
                     for line in text.split("\n"))


def attribution(mail: Mail) -> str:
    return f"On {mail.sent.strftime('%a, %d %b %Y at %H:%M')}, {mail.sender} wrote:"


def thread_body(thread: Sequence[Mail]) -> str:
    """Newest message first; each reply quotes the whole message it answers, one level deeper."""
    body = wrap_paragraphs(thread[-1].paragraphs)
    for reply, answered in zip(reversed(thread[:-1]), reversed(thread[1:])):
        body = f"{wrap_paragraphs(reply.paragraphs)}\n\n{attribution(answered)}\n{quote(body)}"
    return body + "\n"


_CEST = timezone(timedelta(hours=2), "CEST")

EMAIL_THREAD: tuple[Mail, ...] = (
    Mail("Priya Raman", datetime(2025, 10, 16, 17, 5, tzinfo=_CEST), (
        "Daniel, Kenji,",
        "Thanks for pulling the options together. Decision: we renew Brightline Metrics for two "
        "years, from 1 December 2025 to 30 November 2027, at the negotiated price of EUR 96,000 "
        "per year. That is option 2 in Daniel's note.",
        "We are not going ahead with self-hosting this year. Once the 1.5 engineers it needs are "
        "costed in, it is more expensive than the renewal, and the platform team is busy with "
        "the billing service work until the end of November.",
        "Next steps:\n"
        "- Kenji sends the signed order form to Brightline by 24 October 2025.\n"
        "- Sofia confirms the vendor security review (their 2025 SOC 2 report) before Kenji "
        "signs.\n"
        "- Daniel: we revisit self-hosting in the FY2027 budget round in September 2026.",
        "Priya",
        "--\nPriya Raman\nChief Financial Officer, Northwind Labs",
    )),
    Mail("Daniel Mercer", datetime(2025, 10, 15, 11, 42, tzinfo=_CEST), (
        "Priya,",
        "Here is where we landed on the Brightline Metrics renewal. Brightline runs our metrics, "
        "dashboards and alerting, including the alerts that page on-call. The current contract "
        "ends on 30 November 2025. Options:",
        "- Option 1: renew for one year at EUR 108,000.\n"
        "- Option 2: renew for two years at EUR 96,000 per year, with 30-day data retention "
        "instead of 15 days and a 90-day termination for convenience after the first 12 "
        "months.\n"
        "- Option 3: self-host Prometheus and Grafana, about EUR 41,000 a year in "
        "infrastructure plus roughly 1.5 engineers to run it.",
        "Engineering recommends option 2. Can you make the call by Friday so Kenji can "
        "confirm before their price offer expires on 31 October?",
        "Daniel",
    )),
    Mail("Kenji Watanabe", datetime(2025, 10, 14, 9, 18, tzinfo=_CEST), (
        "Hi Daniel,",
        "Brightline's first renewal quote came in at EUR 118,000 per year, up from the EUR "
        "84,000 we pay today. After two calls they offered EUR 108,000 for a one-year term or "
        "EUR 96,000 per year if we commit to two years. The offer is valid until 31 October.",
        "Could engineering give me a recommendation, including what self-hosting would cost?",
        "Thanks,\nKenji",
    )),
)
EMAIL_SUBJECT = "Brightline Metrics renewal - decision"
EMAIL_RECIPIENTS = ("Daniel Mercer", "Kenji Watanabe")
EMAIL_CC = ("Sofia Lindqvist",)


def _message_id(mail: Mail) -> str:
    return f"<{mail.sent.strftime('%Y%m%d%H%M')}.{mail.sender.split()[0].lower()}@{EMAIL_DOMAIN}>"


def build_vendor_thread_eml(path: Path) -> None:
    latest, *earlier = EMAIL_THREAD
    message = EmailMessage(policy=default_email_policy)
    message["From"] = _address(latest.sender)
    message["To"] = ", ".join(_address(name) for name in EMAIL_RECIPIENTS)
    message["Cc"] = ", ".join(_address(name) for name in EMAIL_CC)
    message["Subject"] = f"Re: {EMAIL_SUBJECT}"
    message["Date"] = format_datetime(latest.sent)
    message["Message-ID"] = _message_id(latest)
    message["In-Reply-To"] = _message_id(earlier[0])
    message["References"] = " ".join(_message_id(mail) for mail in reversed(earlier))
    message.set_content(thread_body(EMAIL_THREAD), charset="utf-8", cte="7bit")
    path.write_bytes(message.as_bytes())


# --------------------------------------------------------------------------------------------
# Product roadmap (PPTX)
# --------------------------------------------------------------------------------------------

ROADMAP_FILE = "product-roadmap-2026.pptx"
ROADMAP_TITLE = "Northwind Relay Product Roadmap 2026"
ROADMAP_DATE = datetime(2025, 11, 20, 10, 0)
ROADMAP_SUBTITLE = "Elena Vasquez, Head of Product - Company all-hands, 20 November 2025"

# (slide title, bullets); a bullet starting with two spaces is a second-level point.
ROADMAP_SLIDES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("2026 themes", (
        "Enterprise readiness: the controls large customers ask for in security reviews",
        "Speed: workflows that run faster and are quicker to build",
        "Reach: a new data region and a rebuilt mobile app",
        "Ecosystem: partners build and sell their own connectors",
    )),
    ("H1 2026: enterprise readiness", (
        "Q1 2026: SCIM user provisioning for Business and Enterprise plans",
        "Q1 2026: audit log export to Amazon S3 and Azure Blob Storage",
        "Q2 2026: customer-managed encryption keys (Enterprise plan)",
        "Q2 2026: Relay Mobile 2.0 with offline mode",
        "  Workflows can be approved offline and sync when the device reconnects",
    )),
    ("H2 2026: reach and ecosystem", (
        "Q3 2026: new data region in Sydney, Australia",
        "Q3 2026: connector marketplace public beta",
        "  Partners keep 80% of marketplace revenue; Northwind keeps 20%",
        "Q4 2026: workflow template gallery with 200 templates at launch",
    )),
    ("Targets for 2026", (
        "Cut p95 workflow run latency from 850 ms to 300 ms by Q4 2026",
        "Cut median time to first live workflow from 3 days to under 1 day",
        "Reach 2,000 paying workspaces by December 2026",
    )),
    ("Retirements and key dates", (
        "Classic workflow editor removed on 31 March 2026",
        "Relay v1 API retired on 30 June 2026",
        "  Customers are notified on 1 December 2025; v2 is the only supported API afterwards",
        "Questions: product@northwindlabs.example",
    )),
)


def build_roadmap_pptx(path: Path) -> None:
    from pptx import Presentation

    deck = Presentation()
    title_slide = deck.slides.add_slide(deck.slide_layouts[0])
    title_slide.shapes.title.text = ROADMAP_TITLE
    title_slide.placeholders[1].text = ROADMAP_SUBTITLE

    for title, bullets in ROADMAP_SLIDES:
        slide = deck.slides.add_slide(deck.slide_layouts[1])
        slide.shapes.title.text = title
        frame = slide.placeholders[1].text_frame
        for index, bullet in enumerate(bullets):
            paragraph = frame.paragraphs[0] if index == 0 else frame.add_paragraph()
            paragraph.text = bullet.strip()
            paragraph.level = 1 if bullet.startswith("  ") else 0

    props = deck.core_properties
    props.title = ROADMAP_TITLE
    props.subject = "Product roadmap for Northwind Relay in 2026"
    props.author = "Elena Vasquez"
    props.last_modified_by = "Elena Vasquez"
    props.keywords = "roadmap, 2026, Relay"
    props.comments = ""
    props.created = ROADMAP_DATE
    props.modified = ROADMAP_DATE
    props.revision = 1
    deck.save(str(path))
    _freeze_zip(path)


# --------------------------------------------------------------------------------------------
# I/O helpers and entry point
# --------------------------------------------------------------------------------------------

def _freeze_zip(path: Path, modified: datetime | None = None) -> None:
    """Rewrite an Office zip with fixed member timestamps (and, if given, a fixed modified date)."""
    with zipfile.ZipFile(path) as source:
        members = [(info.filename, source.read(info)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as target:
        for name, data in members:
            if modified is not None and name == "docProps/core.xml":
                stamp = modified.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
                data = _CORE_MODIFIED.sub(rb"\g<1>" + stamp + rb"\g<2>", data)
            info = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            info.create_system = 3
            target.writestr(info, data)
    path.write_bytes(buffer.getvalue())


BUILDERS: dict[str, Callable[[Path], None]] = {
    HR_POLICY_FILE: build_hr_policy_pdf,
    MEETING_FILE: build_meeting_notes_docx,
    FIGURES_FILE: build_quarterly_xlsx,
    EMAIL_FILE: build_vendor_thread_eml,
    ROADMAP_FILE: build_roadmap_pptx,
}


def generate(out_dir: Path) -> list[Path]:
    """Write every generated sample into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, build in BUILDERS.items():
        build(out_dir / name)
        written.append(out_dir / name)
    return written


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=SAMPLES_DIR, help="target folder")
    args = parser.parse_args(argv)
    for path in generate(args.out):
        print(f"{path}  {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()

"""Documents for the soak suites, generated from a seed (fast: a few thousand a second): plain text,
Markdown, HTML, JSON, CSV, a few PDFs and Word files, metadata sidecars on some, and a few broken on
purpose, each with the quarantine reason it must end with."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, replace

from support.docxwriter import Docx
from support.pdfwriter import document, make_pdf

_WORDS = (
    "the a of to and in for on with by from as at that this each every which when where while "
    "harbour tide quay buoy pilot keeper lighthouse ledger manifest cargo vessel berth crane dock "
    "pipeline document chunk index registry event queue worker lease outbox sink retry backoff "
    "bucket object version sequencer notification throttle latency throughput capacity quota "
    "report policy expense invoice contract supplier customer ticket incident runbook alarm "
    "engineer operator reviewer auditor manager analyst team department region account schedule "
    "measured recorded announced deleted changed indexed retried converged settled quarantined "
    "quickly carefully rarely always never twice daily weekly monthly before after during "
    "budget forecast revenue margin growth risk control compliance security access permission "
    "storm fog swell current anchor chart compass signal radio beacon harbourmaster warehouse"
)
WORDS = tuple(_WORDS.split())
DEPARTMENTS = ("operations", "finance", "legal", "support", "engineering")
AUDIENCES = ("staff", "partners", "public", "auditors")
GROUPS = ("crew", "office", "engineering", "finance")


@dataclass(frozen=True)
class Doc:
    key: str
    body: bytes
    sidecar: bytes | None = None  # <key>.metadata.json
    reason: str | None = None  # the quarantine reason it must end with, when broken on purpose

    @property
    def sidecar_key(self) -> str:
        return f"{self.key}.metadata.json"


def sentence(rng: random.Random, low: int = 8, high: int = 24) -> str:
    words = rng.choices(WORDS, k=rng.randint(low, high))
    return " ".join(words).capitalize() + "."


def paragraph(rng: random.Random, sentences: int) -> str:
    return " ".join(sentence(rng) for _ in range(sentences))


def _sections(rng: random.Random, size: int) -> list[tuple[str, list[str]]]:
    """Sections of paragraphs adding up to about ``size`` characters."""
    sections: list[tuple[str, list[str]]] = []
    total = 0
    while total < size or not sections:
        paragraphs = [paragraph(rng, rng.randint(2, 7)) for _ in range(rng.randint(1, 4))]
        total += sum(len(p) for p in paragraphs)
        sections.append((sentence(rng, 2, 5).rstrip("."), paragraphs))
    return sections


def markdown(rng: random.Random, title: str, size: int) -> bytes:
    parts = [f"# {title}"]
    for heading, paragraphs in _sections(rng, size):
        parts.append(f"## {heading}")
        parts += paragraphs
        if rng.random() < 0.2:
            parts.append("\n".join(f"- {sentence(rng, 3, 8)}" for _ in range(rng.randint(2, 5))))
    return "\n\n".join(parts).encode()


def text(rng: random.Random, title: str, size: int) -> bytes:
    body = [p for _, paragraphs in _sections(rng, size) for p in paragraphs]
    return "\n\n".join([title, *body]).encode()


def html(rng: random.Random, title: str, size: int) -> bytes:
    body = "".join(
        f"<h2>{heading}</h2>" + "".join(f"<p>{p}</p>" for p in paragraphs)
        for heading, paragraphs in _sections(rng, size)
    )
    return (
        f"<!doctype html><html><head><title>{title}</title></head><body><nav><a href='/'>Home</a></nav>"
        f"<main><h1>{title}</h1>{body}</main><footer>Generated for the soak suite</footer></body></html>"
    ).encode()


def json_doc(rng: random.Random, title: str, size: int) -> bytes:
    records: list[dict[str, str]] = []
    while sum(len(r["answer"]) for r in records) < size or not records:
        records.append({"question": sentence(rng, 5, 12), "answer": paragraph(rng, rng.randint(1, 4))})
    return json.dumps({"title": title, "records": records}, indent=1).encode()


def csv_doc(rng: random.Random, size: int) -> bytes:
    lines = ["id,department,subject,notes"]
    while sum(len(line) for line in lines) < size:
        notes = sentence(rng, 6, 18).replace(",", "")
        lines.append(f"{len(lines)},{rng.choice(DEPARTMENTS)},{sentence(rng, 2, 5).replace(',', '')},{notes}")
    return ("\n".join(lines) + "\n").encode()


def pdf(rng: random.Random, title: str, size: int) -> bytes:
    return make_pdf(document(_sections(rng, size), title=title, lines_per_page=45, page_numbers=True))


def docx(rng: random.Random, title: str, size: int) -> bytes:
    built = Docx(title=title).heading(title)
    for heading, paragraphs in _sections(rng, size):
        built.heading(heading, 2)
        for p in paragraphs:
            built.paragraph(p)
    return built.build()


def sidecar(rng: random.Random, title: str | None = None) -> bytes:
    body: dict[str, object] = {
        "metadataAttributes": {
            "department": rng.choice(DEPARTMENTS),
            "audience": rng.sample(AUDIENCES, rng.randint(1, 2)),
            "year": rng.randint(2019, 2026),
        },
        "accessControlList": [{"name": rng.choice(GROUPS), "type": "GROUP", "access": "ALLOW"}],
    }
    if title:
        body["title"] = title
    return json.dumps(body).encode()


KINDS = {"md": markdown, "txt": text, "html": html, "json": json_doc}


def make(rng: random.Random, n: int, kind: str, size: int, prefix: str = "corpus") -> Doc:
    """Document ``n`` of type ``kind`` (md, txt, html, json, csv, pdf, docx) of about ``size``
    characters of text."""
    title = f"{sentence(rng, 2, 4).rstrip('.')} {n}"
    key = f"{prefix}/{kind}/{n:05d}-{title.split(maxsplit=1)[0].lower()}.{kind}"
    body: bytes
    if kind == "csv":
        body = csv_doc(rng, size)
    elif kind == "pdf":
        body = pdf(rng, title, size)
    elif kind == "docx":
        body = docx(rng, title, size)
    else:
        body = KINDS[kind](rng, title, size)
    return Doc(key, body)


def broken(prefix: str = "corpus") -> list[Doc]:
    """Files that must be quarantined, with the reason each must get."""
    ok = markdown(random.Random(7), "Fine on its own", 400)
    return [
        Doc(f"{prefix}/broken/truncated.pdf", b"%PDF-1.7\n%broken beyond repair", reason="malformed"),
        Doc(f"{prefix}/broken/empty.txt", b"", reason="empty"),
        Doc(f"{prefix}/broken/bad-sidecar.md", ok, sidecar=b"{not json", reason="metadata_invalid"),
        Doc(f"{prefix}/broken/deep.json", b"[" * 100 + b"]" * 100, reason="json_too_deep"),
    ]


def small_mix(seed: int, count: int, prefix: str = "corpus") -> list[Doc]:
    """The fault suite's corpus: small text, Markdown, HTML, JSON and CSV documents (a few hundred
    bytes to a few KB, one to a few chunks each), a fifth with metadata sidecars, and the broken ones."""
    rng = random.Random(seed)
    kinds = ("md", "md", "txt", "html", "json", "csv")
    docs = []
    for n in range(count):
        doc = make(rng, n, rng.choice(kinds), rng.choice((300, 800, 1500, 3000, 6000)), prefix)
        if rng.random() < 0.2:
            doc = replace(doc, sidecar=sidecar(rng, title=f"Titled {n}" if rng.random() < 0.5 else None))
        docs.append(doc)
    return docs + broken(prefix)


# The load run's mix: (share, kind, characters of text: low, high). About 2.5 chunks a document on
# average: many short notes and pages, fewer long reports, some PDFs and Word files.
LOAD_MIX = (
    (0.30, "md", 300, 2_500),
    (0.17, "txt", 200, 2_000),
    (0.15, "html", 500, 4_000),
    (0.08, "json", 400, 3_000),
    (0.06, "csv", 400, 3_000),
    (0.14, "md", 2_500, 12_000),
    (0.04, "md", 12_000, 40_000),
    (0.04, "pdf", 1_500, 8_000),
    (0.02, "docx", 1_500, 8_000),
)


def load_mix(seed: int, count: int, prefix: str = "load") -> list[Doc]:
    rng = random.Random(seed)
    shares = [share for share, *_ in LOAD_MIX]
    docs = []
    for n in range(count):
        _, kind, low, high = rng.choices(LOAD_MIX, weights=shares)[0]
        doc = make(rng, n, kind, rng.randint(low, high), prefix)
        if rng.random() < 0.1:
            doc = replace(doc, sidecar=sidecar(rng))
        docs.append(doc)
    return docs


def edit(rng: random.Random, doc: Doc) -> Doc:
    """The same document with one paragraph rewritten (or, for CSV and JSON, a record added)."""
    body = doc.body.decode()
    if doc.key.endswith(".csv"):
        return replace(doc, body=(body + f"9999,support,edited,{sentence(rng)}\n").encode())
    if doc.key.endswith(".json"):
        data = json.loads(body)
        data["records"].append({"question": "What changed?", "answer": paragraph(rng, 2)})
        return replace(doc, body=json.dumps(data, indent=1).encode())
    sentences = [s for line in body.replace("<", "\n<").splitlines() for s in line.split(". ") if len(s) > 40]
    if not sentences:
        return replace(doc, body=(body + "\n\n" + paragraph(rng, 3)).encode())
    old = rng.choice(sentences)
    return replace(doc, body=body.replace(old, sentence(rng, 10, 20).rstrip("."), 1).encode())

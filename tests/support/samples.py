"""The binary files of ``samples/``, generated (deterministically) rather than hand-made:
``PYTHONPATH=tests python -m support.samples`` rewrites them, and a test checks the committed copies match."""

from __future__ import annotations

import sys
from pathlib import Path

from support.pdfwriter import document, make_pdf

HANDBOOK_SECTIONS: list[tuple[str, list[str]]] = [
    (
        "1 Purpose",
        [
            "This handbook describes how the operations team runs the document ingestion service day to "
            "day: what to watch, how to respond to alarms, and how to repair a document that did not make "
            "it into the knowledge base.",
            "It is written for the engineer on call. Every procedure names the command that shows the "
            "current state first, then the command that changes it, so that nothing is changed blindly.",
        ],
    ),
    (
        "2 Daily checks",
        [
            "Start the day with the status command. It lists how many documents are processed, "
            "quarantined and deleted, and every quarantined document with the reason it was set aside. "
            "A sudden rise in one reason is the first sign of a new kind of file arriving, or of a "
            "parser regression after an upgrade.",
            "Next, look at the dead-letter queue. Messages only arrive there after several transient "
            "failures in a row, such as throttling or a service outage. They are never lost: the "
            "redrive command moves them back to the ingest queue once the cause is fixed.",
            "Finally, compare the number of objects in the raw bucket with the number of registry "
            "entries. The reconciliation job does this every night and repairs any drift it finds, "
            "but a quick look after an incident confirms that the pipeline caught up.",
        ],
    ),
    (
        "3 Responding to alarms",
        [
            "Quarantine spikes are usually harmless: somebody uploaded a folder of images or encrypted "
            "statements. Check the reasons, tell the owner, and leave the files where they are. "
            "Encrypted documents can be indexed once the owner removes the password.",
            "A growing dead-letter queue needs attention. Read the function's logs for the failing "
            "documents: every log line carries the source key. Throttling resolves itself; access "
            "errors after a permissions change need the template to be redeployed.",
            "Synchronisation lag means the sinks are behind the registry. The knowledge base accepts "
            "a limited number of direct ingestion requests per second, so a bulk upload of thousands of "
            "documents takes a while to drain. The lag metric shows whether it is falling.",
        ],
    ),
    (
        "4 Repairing a document",
        [
            "To re-ingest a single document, copy it onto itself in the raw bucket with new metadata. "
            "The new version triggers a notification, and because the content is the same, only the "
            "registry is touched. To force a full re-processing after a parser upgrade, change the "
            "pipeline settings: the settings fingerprint is part of every registry entry, and a "
            "mismatch makes the next event re-chunk the document.",
            "Never edit the processed bucket by hand. Its contents are derived entirely from the raw "
            "bucket and the registry, and the reconciliation job will undo manual changes. Internationalisation "
            "of the handbook is planned; translations will live next to this file.",
        ],
    ),
]


def handbook_pdf() -> bytes:
    pages = document(
        HANDBOOK_SECTIONS,
        title="Operations handbook",
        lines_per_page=24,
        running_header="Sluice operations handbook - internal",
        page_numbers=True,
        hyphenate=True,
    )
    return make_pdf(pages, title="Operations handbook")


def broken_pdf() -> bytes:
    """A PDF cut off after its first object: what an interrupted upload leaves behind."""
    return handbook_pdf()[:300]


def onboarding_docx() -> bytes:
    from support.docxwriter import Docx

    return (
        Docx(title="Onboarding checklist")
        .heading("Onboarding checklist", 1)
        .paragraph("New engineers on the ingestion team work through this list in their first week.")
        .heading("Access", 2)
        .bullet("Request read access to the raw and processed buckets of the dev stack.")
        .bullet("Join the on-call rotation channel and read the operations handbook.")
        .heading("First tasks", 2)
        .table(
            [
                ["Task", "Owner", "Done when"],
                ["Run make run", "You", "The demo report prints"],
                ["Preview a hostile file", "You", "sluice preview prints its reason"],
            ]
        )
        .paragraph("Ask questions early; nobody expects you to know the registry's outbox on day one.")
        .build()
    )


GENERATED = {
    "operations-handbook.pdf": handbook_pdf,
    "broken-upload.pdf": broken_pdf,
    "onboarding-checklist.docx": onboarding_docx,
}


def main(directory: str = "samples") -> None:
    target = Path(directory)
    for name, build in GENERATED.items():
        (target / name).write_bytes(build())
        print(f"wrote {target / name}")


if __name__ == "__main__":
    main(*sys.argv[1:])

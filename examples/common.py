"""What the example scripts share (run them from the repository root)."""

from __future__ import annotations

from pathlib import Path

from sepgraph.files import atomic_text


def replace_section(document: Path, heading: str, lines: list[str], first: bool = False) -> None:
    """Write the ``## heading`` section of a Markdown ``document`` (``lines``, the heading first): in place of its last
    version, or where it has none, after the title's introduction (``first``) or at the end. Nothing else changes."""
    text = document.read_text() if document.is_file() else ""
    body = "\n".join(lines).strip("\n")
    start = text.find(heading + "\n")
    if start >= 0:
        after = text.find("\n## ", start + len(heading))
        before, rest = text[:start], text[after + 1:] if after >= 0 else ""
    elif first and "\n## " in text:
        split = text.find("\n## ")
        before, rest = text[:split], text[split + 1:]
    else:
        before, rest = text, ""
    parts = [before.strip("\n"), body, rest.strip("\n")]
    atomic_text(document, "\n\n".join(part for part in parts if part) + "\n")

"""Documents for memory: reading Markdown and plain-text files, and cutting them into searchable chunks."""

from __future__ import annotations

import re
from pathlib import Path

SUFFIXES = (".md", ".markdown", ".txt", ".text")
MAX_BYTES = 1_000_000
# A chunk holds whole paragraphs up to about this many characters (one over-long paragraph is cut).
CHUNK_CHARS = 700
_HEADING = re.compile(r"^(#{1,6})\s+(.*\S)\s*$")


class DocumentError(ValueError):
    """A document that cannot be learnt (the message names the file and why)."""


def read_document(path: Path) -> str:
    """The text of a Markdown or plain-text file; a DocumentError names what is wrong."""
    if path.suffix.lower() not in SUFFIXES:
        raise DocumentError(f"{path}: only Markdown and plain text can be learnt ({', '.join(SUFFIXES)})")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DocumentError(f"{path}: cannot be read ({e.strerror or e})") from None
    return decode(data, str(path))


def decode(data: bytes, name: str) -> str:
    """UTF-8 text of a document's bytes, within the size limit."""
    if len(data) > MAX_BYTES:
        raise DocumentError(f"{name}: {len(data):,} bytes, more than the {MAX_BYTES:,} a document may have")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise DocumentError(f"{name}: not UTF-8 text (byte {e.start})") from None
    if not text.strip():
        raise DocumentError(f"{name}: empty")
    return text


def chunk(text: str, max_chars: int = CHUNK_CHARS) -> list[str]:
    """Whole paragraphs packed into chunks of about ``max_chars``, each led by its Markdown heading."""
    chunks: list[str] = []
    heading, body = "", []

    def flush() -> None:
        if body:
            lead = f"{heading}\n" if heading else ""
            chunks.append(lead + "\n\n".join(body))
            body.clear()

    for para in re.split(r"\n\s*\n", text.replace("\r\n", "\n")):
        para = para.strip()
        if not para:
            continue
        first, _, rest = para.partition("\n")
        m = _HEADING.match(first)
        if m:
            flush()
            heading, para = m.group(2), rest.strip()
            if not para:
                continue
        for piece in _cut(para, max_chars):
            if body and sum(len(b) for b in body) + len(piece) > max_chars:
                flush()
            body.append(piece)
    flush()
    return chunks


def _cut(para: str, max_chars: int) -> list[str]:
    """A paragraph longer than a chunk, cut at sentence ends (or spaces)."""
    if len(para) <= max_chars:
        return [para]
    pieces, current = [], ""
    for sentence in re.split(r"(?<=[.!?])\s+|\s+(?=\S{40,})", para):
        if current and len(current) + len(sentence) + 1 > max_chars:
            pieces.append(current)
            current = ""
        current = f"{current} {sentence}".strip()
        while len(current) > max_chars:
            pieces.append(current[:max_chars])
            current = current[max_chars:]
    if current:
        pieces.append(current)
    return pieces


def knowledge_files(folder: Path) -> list[Path]:
    """The Markdown and text files under a knowledge folder, in name order."""
    if not folder.is_dir():
        raise DocumentError(f"{folder}: not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)

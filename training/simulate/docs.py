"""Regenerated sections of markdown docs, between <!-- NAME:start --> and <!-- NAME:end --> markers."""

from __future__ import annotations

from pathlib import Path


def replace_section(path: Path, name: str, body: str) -> None:
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        raise ValueError(f"{path} has no {start} … {end} section to regenerate")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    path.write_text(f"{head}{start}\n{body.rstrip()}\n{end}{tail}")

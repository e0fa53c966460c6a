"""A tiny format-neutral document model: the report is built once and rendered to HTML or
Markdown, so both formats always carry the same content.

Everything is plain text until a renderer escapes it; nothing here is trusted markup.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class Code:
    """Inline literal (a code, a digest, a file name)."""

    text: str


@dataclass(frozen=True)
class Strong:
    text: str


Inline = str | Link | Code | Strong
Cell = tuple[Inline, ...]


def cell(*parts: Inline) -> Cell:
    return tuple(parts)


@dataclass(frozen=True)
class Heading:
    level: int
    text: str
    anchor: str | None = None


@dataclass(frozen=True)
class Para:
    parts: Cell
    tone: str = ""  # "", "note", "warn", "bad", "ok": a hint for the HTML renderer's styling


@dataclass(frozen=True)
class Table:
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    kind: str = ""  # "index": the rule list the governance page filters


@dataclass(frozen=True)
class Fields:
    """Label / value pairs (a definition list in HTML, a two-column table in Markdown)."""

    pairs: tuple[tuple[str, Cell], ...]


@dataclass(frozen=True)
class Bullets:
    items: tuple[Cell, ...]


@dataclass(frozen=True)
class Literal:
    """Text shown exactly as written (card detail Markdown, a YAML diff)."""

    text: str
    language: str = "text"


@dataclass(frozen=True)
class Figure:
    """A chart: a self-contained SVG document (rendered by ``cds.report.charts``), its caption,
    and a text alternative for screen readers and the Markdown report."""

    svg: str
    caption: str
    alt: str


@dataclass(frozen=True)
class Section:
    """A group of blocks; ``keys`` (id, family...) let the governance page filter sections."""

    anchor: str
    blocks: tuple[Block, ...]
    keys: tuple[str, ...] = ()


Block = Heading | Para | Table | Fields | Bullets | Literal | Figure | Section


@dataclass(frozen=True)
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)

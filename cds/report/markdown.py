"""Render a ``Document`` as GitHub-flavoured Markdown with the same content as the HTML.

Text is backslash-escaped so rule text can neither start HTML (``<script>``) nor break a table
(``|``); card details, which are Markdown themselves, are shown verbatim in fenced blocks.
"""

from __future__ import annotations

import re

from cds.report.doc import (
    Block,
    Bullets,
    Cell,
    Code,
    Document,
    Fields,
    Figure,
    Heading,
    Inline,
    Link,
    Literal,
    Para,
    Section,
    Strong,
    Table,
)
from cds.report.html import anchor

_SPECIAL = re.compile(r"([\\`*\[\]<>|&#!~])")
# Intraword underscores (days_ago) are literal in GFM; only a word-boundary one can emphasise.
_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
_NEWLINES = re.compile(r"\s*\n\s*")
_TONE = {"warn": "**Note:** ", "bad": "**Attention:** "}


def escape_md(text: str) -> str:
    text = _SPECIAL.sub(r"\\\1", _NEWLINES.sub(" ", text))
    return _UNDERSCORE.sub(r"\\_", text)


def render_markdown(doc: Document) -> str:
    return "\n\n".join(_block(b) for b in doc.blocks).rstrip() + "\n"


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        target = f'<a id="{anchor(block.anchor)}"></a>\n' if block.anchor else ""
        return f"{target}{'#' * block.level} {escape_md(block.text)}"
    if isinstance(block, Para):
        return _TONE.get(block.tone, "") + _cell(block.parts)
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Fields):
        return "\n".join(
            f"- **{escape_md(label)}:** {_cell(value)}" for label, value in block.pairs
        )
    if isinstance(block, Bullets):
        return "\n".join(f"- {_cell(item)}" for item in block.items)
    if isinstance(block, Literal):
        return _fenced(block)
    if isinstance(block, Figure):
        # Markdown viewers differ on embedded SVG: the caption and text alternative stand in.
        return f"_Chart: {escape_md(block.caption)}_ ({escape_md(block.alt)})"
    return _section(block)


def _section(section: Section) -> str:
    body = "\n\n".join(_block(b) for b in section.blocks)
    return f'---\n\n<a id="{anchor(section.anchor)}"></a>\n\n{body}'


def _fenced(literal: Literal) -> str:
    longest = max((len(run) for run in re.findall(r"`+", literal.text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{literal.language}\n{literal.text}\n{fence}"


def _table(table: Table) -> str:
    lines = [
        "| " + " | ".join(escape_md(h) or " " for h in table.header) + " |",
        "|" + "---|" * len(table.header),
    ]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in table.rows]
    return "\n".join(lines)


def _cell(parts: Cell) -> str:
    return "".join(_inline(p) for p in parts)


def _inline(part: Inline) -> str:
    if isinstance(part, str):
        return escape_md(part)
    if isinstance(part, Strong):
        return f"**{escape_md(part.text)}**"
    if isinstance(part, Code):
        return _code(part.text)
    return _link(part)


def _code(text: str) -> str:
    text = " ".join(text.split()).replace("|", "\\|")  # GFM tables split on | even in code
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    ticks = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    return f"{ticks}{pad}{text}{pad}{ticks}"


def _link(link: Link) -> str:
    url = link.url
    if url.startswith("#"):
        url = f"#{anchor(url[1:])}"
    elif not url.lower().startswith(("https://", "http://")):
        return escape_md(f"{link.label} ({link.url})")
    if re.search(r"[\s()<>]", url):
        url = "<" + url.replace(">", "%3E").replace(" ", "%20") + ">"
    return f"[{escape_md(link.label)}]({url})"

"""Render a ``Document`` as one self-contained HTML page: inline CSS, no external assets, readable
without JavaScript. Every piece of text is escaped here, once (rule text may contain ``<`` or
``&``), and only http(s) and in-page links become ``href``s.

``interactive=True`` adds a small inline script that filters the rule list by id and family; the
page is complete without it (the filter box stays hidden when scripts do not run).
"""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape

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

CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d6dae2; --band: #f4f6f9; --accent: #1f5fa8;
  --warn: #8a5a00; --warn-bg: #fff6e0; --bad: #9b1c1c; --bad-bg: #fdecec; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
  font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Noto Sans", sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 28px; margin: 0 0 12px; }
h2 { font-size: 21px; margin: 36px 0 10px; padding-bottom: 4px;
  border-bottom: 2px solid var(--line); }
h3 { font-size: 16px; margin: 20px 0 6px; color: var(--muted); text-transform: uppercase;
  letter-spacing: .04em; }
section.rule { border-top: 4px solid var(--accent); margin-top: 40px; }
section.rule > h2 { border-bottom: none; margin-top: 12px; }
a { color: var(--accent); }
p a { white-space: nowrap; }
code { font: 13px/1.4 ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  background: var(--band); padding: 1px 4px; border-radius: 3px; overflow-wrap: anywhere; }
pre { font: 13px/1.45 ui-monospace, Menlo, Consolas, monospace; background: var(--band);
  border: 1px solid var(--line); border-radius: 4px; padding: 10px 12px; white-space: pre-wrap;
  overflow-wrap: anywhere; margin: 6px 0 14px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top;
  overflow-wrap: break-word; }  /* words stay whole; only an over-long one breaks */
td code { white-space: nowrap; }  /* a code is never split; long URLs in text may be */
th { background: var(--band); font-weight: 600; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0 14px; }
dt { font-weight: 600; color: var(--muted); }
dd { margin: 0; overflow-wrap: anywhere; }
ul { margin: 4px 0 12px; padding-left: 22px; }
p { margin: 6px 0 10px; }
p.note { color: var(--muted); }
p.warn { background: var(--warn-bg); color: var(--warn); padding: 6px 10px; border-radius: 4px; }
p.bad { background: var(--bad-bg); color: var(--bad); padding: 6px 10px; border-radius: 4px; }
.filter { position: sticky; top: 0; background: #fff; padding: 8px 0; z-index: 1;
  border-bottom: 1px solid var(--line); }
.filter input { font: inherit; width: 360px; max-width: 100%; padding: 5px 8px;
  border: 1px solid var(--line); border-radius: 4px; }
figure { margin: 10px 0 18px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: 13px; }
@media print { .filter { display: none; } section.rule { break-before: page; } }
"""

FILTER_SCRIPT = """
(function () {
  var box = document.getElementById("rule-filter");
  if (!box) { return; }
  box.closest(".filter").hidden = false;
  box.addEventListener("input", function () {
    var q = box.value.trim().toLowerCase();
    document.querySelectorAll("section.rule").forEach(function (s) {
      s.hidden = q !== "" && s.getAttribute("data-search").indexOf(q) < 0;
    });
    document.querySelectorAll("table.index tbody tr").forEach(function (r) {
      r.hidden = q !== "" && r.textContent.toLowerCase().indexOf(q) < 0;
    });
  });
})();
"""

# For a Content-Security-Policy that allows this one script and nothing else.
SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(FILTER_SCRIPT.encode()).digest()).decode()

_ANCHOR = re.compile(r"[^A-Za-z0-9_-]")
_SAFE_HREF = ("https://", "http://", "#", "/")


def anchor(text: str) -> str:
    return _ANCHOR.sub("-", text)


def render_html(doc: Document, *, interactive: bool = False) -> str:
    return page(doc.title, render_blocks(doc.blocks), interactive=interactive)


def page(title: str, body: str, *, interactive: bool = False) -> str:
    """The page shell around already-rendered (escaped) body HTML."""
    head = (
        f'<meta charset="utf-8"><meta name="viewport" content="width=device-width, '
        f'initial-scale=1"><title>{escape(title)}</title><style>{CSS}</style>'
    )
    filter_box = (
        (
            '<div class="filter" hidden><label>Filter rules by id, family or title: '
            '<input id="rule-filter" type="search" placeholder="e.g. KAP-CI or driving">'
            "</label></div>"
        )
        if interactive
        else ""
    )
    script = f"<script>{FILTER_SCRIPT}</script>" if interactive else ""
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head>{head}</head>\n<body><main>{filter_box}\n'
        f"{body}</main>{script}</body></html>\n"
    )


def render_blocks(blocks: list[Block] | tuple[Block, ...]) -> str:
    return "\n".join(_block(b) for b in blocks)


def _block(block: Block) -> str:
    if isinstance(block, Heading):
        ident = f' id="{anchor(block.anchor)}"' if block.anchor else ""
        return f"<h{block.level}{ident}>{escape(block.text)}</h{block.level}>"
    if isinstance(block, Para):
        tone = f' class="{block.tone}"' if block.tone else ""
        return f"<p{tone}>{_cell(block.parts)}</p>"
    if isinstance(block, Table):
        return _table(block)
    if isinstance(block, Fields):
        items = "".join(
            f"<dt>{escape(label)}</dt><dd>{_cell(value)}</dd>" for label, value in block.pairs
        )
        return f"<dl>{items}</dl>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{_cell(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Literal):
        return f'<pre class="{escape(block.language)}">{escape(block.text)}</pre>'
    if isinstance(block, Figure):
        return _figure(block)
    return _section(block)


def _figure(figure: Figure) -> str:
    """The SVG as a ``data:`` image: an image document runs no script and cannot reach the
    page, so chart content needs no trust and the page's CSP only has to allow ``img-src data:``."""
    data = base64.b64encode(figure.svg.encode("utf-8")).decode("ascii")
    return (
        f'<figure><img alt="{escape(figure.alt)}" src="data:image/svg+xml;base64,{data}">'
        f"<figcaption>{escape(figure.caption)}</figcaption></figure>"
    )


def _section(section: Section) -> str:
    search = escape(" ".join(section.keys).lower())
    return (
        f'<section class="rule" id="{anchor(section.anchor)}" data-search="{search}">\n'
        f"{render_blocks(section.blocks)}\n</section>"
    )


def _table(table: Table) -> str:
    kind = f' class="{escape(table.kind)}"' if table.kind else ""
    head = "".join(f"<th>{escape(h)}</th>" for h in table.header)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in table.rows
    )
    return f"<table{kind}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _cell(parts: Cell) -> str:
    return "".join(_inline(p) for p in parts)


def _inline(part: Inline) -> str:
    if isinstance(part, str):
        return _breakable(escape(part))
    if isinstance(part, Code):
        return f"<code>{escape(part.text)}</code>"
    if isinstance(part, Strong):
        return f"<strong>{escape(part.text)}</strong>"
    return _link(part)


def _breakable(text: str) -> str:
    """Let a long code-system URL wrap after its slashes (words elsewhere stay whole)."""
    if text.startswith(("http://", "https://", "urn:")) and " " not in text:
        return text.replace("/", "/<wbr>")
    return text


def _link(link: Link) -> str:
    # "/..." is a page of this service (governance rule pages); "//host" would leave it.
    if not link.url.lower().startswith(_SAFE_HREF) or link.url.startswith("//"):
        return escape(f"{link.label} ({link.url})")
    href = f"#{anchor(link.url[1:])}" if link.url.startswith("#") else link.url
    external = "" if href.startswith(("#", "/")) else ' rel="noopener noreferrer"'
    return f'<a href="{escape(href)}"{external}>{escape(link.label)}</a>'

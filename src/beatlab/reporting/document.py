"""A report as a flat list of blocks, rendered twice: self-contained HTML and Markdown.

Building the content once and rendering it per format keeps the two versions identical in what
they say. Figures are PNG files in the output directory: Markdown links them, HTML embeds their
bytes as data URIs so the page needs nothing beside it.
"""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Text:
    text: str


@dataclass
class Table:
    columns: list[str]
    rows: list[list[str]]
    caption: str = ""


@dataclass
class Figure:
    file: str
    """PNG file name inside the output directory."""
    caption: str


Block = Heading | Text | Table | Figure


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(e[-+]?\d+)?%?$")


def _numeric(rows: list[list[str]], col: int) -> bool:
    """Right-align a column when every filled cell is a number, as in a printed table."""
    cells = [row[col] for row in rows if row[col] not in ("", "–")]
    return bool(cells) and all(_NUMBER.match(cell) for cell in cells)


def _anchors(doc: Document) -> dict[int, str]:
    """Unique ids for the level-2 headings (by block index), for the table of contents."""
    out: dict[int, str] = {}
    for i, block in enumerate(doc.blocks):
        if isinstance(block, Heading) and block.level == 2:
            base = re.sub(r"[^a-z0-9]+", "-", block.text.lower()).strip("-") or "section"
            anchor, n = base, 2
            while anchor in out.values():
                anchor, n = f"{base}-{n}", n + 1
            out[i] = anchor
    return out


def to_markdown(doc: Document) -> str:
    lines = [f"# {doc.title}", ""]
    for block in doc.blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Text):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"*{block.caption}*", ""]
            lines += _markdown_table(block) + [""]
        else:
            lines += [f"![{block.caption}]({block.file})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


def _markdown_table(table: Table) -> list[str]:
    def row(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---:" if _numeric(table.rows, i) else "---" for i in range(len(table.columns))]
    return [row(table.columns), row(rule), *(row(r) for r in table.rows)]


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; color: #222; margin: 0; background: #fafafa; }
main { max-width: 1100px; margin: 0 auto; padding: 1.5em 2em 4em; background: #fff; }
h1 { border-bottom: 2px solid #345; padding-bottom: .3em; }
h2 { border-bottom: 1px solid #ccd; margin-top: 2.2em; padding-bottom: .2em; color: #234; }
h3 { margin-top: 1.6em; color: #345; }
nav ul { columns: 2; padding-left: 1.2em; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: 13px; }
caption { caption-side: top; text-align: left; font-style: italic; padding-bottom: .3em; }
th, td { border: 1px solid #ccd; padding: .25em .6em; }
th { background: #eef1f5; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tbody tr:nth-child(even) { background: #f7f8fa; }
figure { display: inline-block; vertical-align: top; margin: .8em 1.2em 1.4em 0; }
figure img { max-width: 100%; border: 1px solid #e2e4e8; }
figcaption { font-style: italic; font-size: 13px; color: #555; }
"""


def to_html(doc: Document, figure_dir: Path) -> str:
    """The page, with every figure read from `figure_dir` and inlined: no external resources."""
    esc = html.escape
    anchors = _anchors(doc)
    toc = "".join(
        f'<li><a href="#{anchors[i]}">{esc(block.text)}</a></li>'
        for i, block in enumerate(doc.blocks)
        if isinstance(block, Heading) and i in anchors
    )
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{esc(doc.title)}</title><style>{STYLE}</style></head>",
        f"<body><main><h1>{esc(doc.title)}</h1>",
        f"<nav><strong>Contents</strong><ul>{toc}</ul></nav>",
    ]
    for i, block in enumerate(doc.blocks):
        if isinstance(block, Heading):
            anchor = f' id="{anchors[i]}"' if i in anchors else ""
            parts.append(f"<h{block.level}{anchor}>{esc(block.text)}</h{block.level}>")
        elif isinstance(block, Text):
            parts.append(f"<p>{esc(block.text)}</p>")
        elif isinstance(block, Table):
            parts.append(_html_table(block))
        else:
            data = base64.b64encode((figure_dir / block.file).read_bytes()).decode("ascii")
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{esc(block.caption)}">'
                f"<figcaption>{esc(block.caption)}</figcaption></figure>"
            )
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _html_table(table: Table) -> str:
    esc = html.escape
    numeric = [_numeric(table.rows, i) for i in range(len(table.columns))]
    head = "".join(f"<th>{esc(c)}</th>" for c in table.columns)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="num">{esc(c)}</td>' if numeric[i] else f"<td>{esc(c)}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in table.rows
    )
    caption = f"<caption>{esc(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

"""The HTML every page shares: the shell (inline style, language switch, CSP), tables, numbers.

Text is bilingual: each label is a Vietnamese `<span class="vi">` and an English `<span class="en">`.
Both show by default (English smaller, after the Vietnamese); the switch at the top shows one
language only. Numbers are written the Vietnamese way (1.843; 52,69 %), as the founding report does.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from datetime import date, datetime

# The browser may fetch nothing: no script, style, font, image or connection outside this file.
# (`data:`/`blob:` images are what plotly's "download as PNG" makes in the page itself.)
CSP = (
    "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
    "img-src data: blob:; font-src data:; connect-src 'none'; base-uri 'none'; form-action 'none'"
)

STYLE = """
:root { --ink: #1d2733; --muted: #5d6b7a; --line: #d8dee6; --band: #f3f6f9; --accent: #0b5fa5;
        --good: #1b7f3b; --bad: #b3261e; --warn: #9a6700; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, "Segoe UI", Roboto, "Noto Sans", Arial, sans-serif; color: var(--ink); }
header.top { background: #0b3d6b; color: #fff; padding: 16px 28px; }
header.top h1 { margin: 0 0 4px; font-size: 22px; }
header.top .meta { color: #cfe0f0; font-size: 13px; }
header.top .en { color: #cfe0f0; }
nav.sections { position: sticky; top: 0; z-index: 10; background: #fff; border-bottom: 1px solid var(--line);
               padding: 6px 28px; font-size: 14px; display: flex; gap: 16px; flex-wrap: wrap; align-items: center; }
nav.sections a { color: var(--accent); text-decoration: none; }
.langswitch { margin-left: auto; display: flex; gap: 4px; }
.langswitch button { border: 1px solid var(--line); background: #fff; padding: 2px 8px; cursor: pointer;
                     border-radius: 4px; font: inherit; font-size: 13px; }
.langswitch button[aria-pressed="true"] { background: var(--accent); color: #fff; border-color: var(--accent); }
main { padding: 8px 28px 40px; max-width: 1400px; }
section { margin: 28px 0; }
h2 { font-size: 19px; border-bottom: 2px solid var(--accent); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 18px 0 6px; }
.en { color: var(--muted); font-weight: normal; }
.vi + .en::before { content: " / "; }
body.lang-vi .en, body.lang-en .vi { display: none; }
body.lang-en .vi + .en::before { content: ""; }
body.lang-en .en { color: inherit; }
table { border-collapse: collapse; margin: 8px 0 14px; font-size: 14px; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--band); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.num { white-space: nowrap; }
.scroll { overflow-x: auto; max-width: 100%; }
tr.total td { font-weight: 600; background: var(--band); }
.note { color: var(--muted); font-size: 13px; }
.chip { display: inline-block; padding: 1px 8px; border-radius: 10px; font-size: 13px; color: #fff; }
.chip.good { background: var(--good); } .chip.bad { background: var(--bad); } .chip.warn { background: var(--warn); }
.chip.muted { background: var(--muted); }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 6px; }
details { margin: 6px 0 14px; } summary { cursor: pointer; color: var(--accent); }
.cards { display: flex; gap: 12px; flex-wrap: wrap; margin: 10px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 8px 14px; min-width: 150px; max-width: 260px; }
.card .value { font-size: 22px; font-weight: 600; }
.banner { padding: 12px 16px; border-radius: 6px; color: #fff; font-size: 17px; margin: 12px 0; }
.banner.good { background: var(--good); } .banner.bad { background: var(--bad); }
.banner .en { color: #eef; }
svg.spark { vertical-align: middle; }
footer { color: var(--muted); font-size: 12px; padding: 12px 28px 30px; border-top: 1px solid var(--line); }
"""

LANG_SCRIPT = """
(function () {
  var buttons = document.querySelectorAll('.langswitch button');
  function show(lang) {
    document.body.classList.remove('lang-vi', 'lang-en');
    if (lang !== 'both') document.body.classList.add('lang-' + lang);
    buttons.forEach(function (b) { b.setAttribute('aria-pressed', String(b.dataset.lang === lang)); });
  }
  buttons.forEach(function (b) { b.addEventListener('click', function () { show(b.dataset.lang); }); });
})();
"""


def esc(value: object) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def bi(vi: str, en: str, tag: str = "span") -> str:
    """A bilingual label: Vietnamese, then English (escaped)."""
    return f'<{tag} class="vi" lang="vi">{esc(vi)}</{tag}><{tag} class="en" lang="en">{esc(en)}</{tag}>'


def number(value: float | int | None, decimals: int = 0) -> str:
    """1843 -> 1.843; 52.6858 (2) -> 52,69 (Vietnamese separators); None -> –."""
    if value is None:
        return "–"
    text = f"{float(value):,.{decimals}f}"
    return text.replace(",", "\0").replace(".", ",").replace("\0", ".")


def signed(value: float, decimals: int = 0) -> str:
    """+12 / −0,03 / = (no difference at this precision)."""
    if round(abs(value), decimals) == 0:
        return "="
    return ("+" if value > 0 else "−") + number(abs(value), decimals)


def percent(value: float | None, decimals: int = 1) -> str:
    return "–" if value is None else f"{number(value, decimals)} %"


def day(value: date | datetime | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return value.isoformat() if isinstance(value, date) else str(value)


def table(
    headers: Sequence[tuple[str, ...]],
    rows: Iterable[Sequence[str]],
    css: str = "",
    row_classes: Sequence[str] | None = None,
) -> str:
    """A table of already-escaped cells; a header is (vi, en) or (vi, en, "num") for a right-aligned column."""
    numeric = [len(h) > 2 and h[2] == "num" for h in headers]
    labels = [esc(h[0]) if h[0] == h[1] else bi(h[0], h[1]) for h in headers]  # a column name: once
    head = "".join(f'<th class="{"num" if n else ""}">{label}</th>' for label, n in zip(labels, numeric, strict=True))
    body = []
    for i, row in enumerate(rows):
        cells = "".join(f'<td class="{"num" if n else ""}">{cell}</td>' for cell, n in zip(row, numeric, strict=True))
        css_row = f' class="{row_classes[i]}"' if row_classes and row_classes[i] else ""
        body.append(f"<tr{css_row}>{cells}</tr>")
    rows_html = "".join(body)
    inner = f"<thead><tr>{head}</tr></thead><tbody>{rows_html}</tbody>"
    return f'<div class="scroll"><table class="{css}">{inner}</table></div>'


def page(title: tuple[str, str], subtitle: str, nav: Sequence[tuple[str, str, str]], body: str, head: str = "") -> str:
    """The whole document: `nav` is (anchor, vi, en); `head` may add inline scripts (plotly)."""
    links = "".join(f'<a href="#{esc(anchor)}">{bi(vi, en)}</a>' for anchor, vi, en in nav)
    switch = (
        '<div class="langswitch" role="group" aria-label="Ngôn ngữ / Language">'
        '<button type="button" data-lang="both" aria-pressed="true">VI + EN</button>'
        '<button type="button" data-lang="vi" aria-pressed="false">Tiếng Việt</button>'
        '<button type="button" data-lang="en" aria-pressed="false">English</button></div>'
    )
    return (
        '<!DOCTYPE html>\n<html lang="vi"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title[0])} / {esc(title[1])}</title><style>{STYLE}</style>{head}</head>"
        f'<body><header class="top"><h1>{bi(*title)}</h1><div class="meta">{subtitle}</div></header>'
        f'<nav class="sections">{links}{switch}</nav><main>{body}</main>'
        f"<script>{LANG_SCRIPT}</script></body></html>\n"
    )

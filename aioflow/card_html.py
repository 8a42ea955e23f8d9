"""The HTML every card is made of: escaping, the page around a card, a small Markdown, previews.

A card is one self-contained HTML page: its CSS is inline, images are `data:` URIs, and it loads
nothing from the network, so a card file opens anywhere (a browser, an e-mail, the run report).
Everything a user gives (text, values, names) goes through `escape` before it is placed. A page
holding a `VegaChart` also carries the chart libraries vendored in `aioflow/cards_static/`
(Vega, Vega-Lite, vega-embed: about 840 KB) and the few lines that draw its charts with them;
a page without one carries none of it (`chart_scripts`).

`preview` turns any value into a bounded HTML fragment (size-capped repr text, a table for a
data frame, an image for a PIL image, a matplotlib figure or an image-shaped numpy array), each
recognised by duck typing: aioflow imports none of those libraries.
"""

from __future__ import annotations

import base64
import functools
import html
import io
import re
import struct
import zlib
from importlib import resources
from typing import Any

#: The most characters of a value's repr a preview shows.
PREVIEW_CHARS = 2000
#: The most rows and columns of a data frame's table in a preview.
PREVIEW_ROWS = 20
PREVIEW_COLUMNS = 20

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1f2328;
background:#f6f8fa}
main{max-width:1100px;margin:0 auto;padding:20px}
.af-row{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:12px 16px;
margin:0 0 12px;overflow-x:auto}
h1,h2,h3{margin:.3em 0}
table{border-collapse:collapse;font-size:13px}
td,th{border:1px solid #d0d7de;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa}
pre,code{font:12px/1.4 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{white-space:pre-wrap;word-break:break-word;margin:0}
.af-error{border-color:#cf222e;background:#fff5f5}
.af-error h3{color:#cf222e}
.af-muted{color:#656d76}
.af-progress{height:14px;background:#eaeef2;border-radius:7px;overflow:hidden;min-width:200px}
.af-progress>div{height:100%;background:#2da44e}
.af-value{font-size:28px;font-weight:600}
.af-meta td:first-child{font-weight:600;white-space:nowrap}
svg text{font:12px system-ui,sans-serif}
.af-vega-error{color:#cf222e}
"""

#: The versions of the chart libraries in `aioflow/cards_static/` (see its README).
VEGA_VERSIONS = {"vega": "6.4.0", "vega-lite": "6.5.0", "vega-embed": "7.3.0"}
#: Their files, in the order a page loads them (vega-embed needs the other two).
VEGA_FILES = ("vega.min.js", "vega-lite.min.js", "vega-embed.min.js")
#: How a VegaChart's HTML begins. Only a component's own markup can hold it (user text is
#: escaped, `<` included), so a page holding it has a chart to draw.
CHART_MARK = '<div class="af-vega-chart"'

# Draws each chart from its spec (the JSON in the chart's first child); a spec the libraries
# refuse shows their message in the chart's place instead of a console error.
_DRAW = """(function () {
  function fail(target, error) {
    target.className += " af-vega-error";
    target.textContent = "The chart could not be drawn: " + ((error && error.message) || error);
  }
  document.querySelectorAll(".af-vega-chart").forEach(function (chart) {
    var target = chart.querySelector(".af-vega");
    var options = {actions: chart.getAttribute("data-actions") === "true", renderer: "svg"};
    try {
      var spec = JSON.parse(chart.querySelector("script").textContent);
      vegaEmbed(target, spec, options).catch(function (error) { fail(target, error); });
    } catch (error) {
      fail(target, error);
    }
  });
})();"""


def escape(value: object) -> str:
    """`str(value)` made safe to place in HTML text or a quoted attribute."""
    return html.escape(str(value), quote=True)


@functools.cache
def chart_scripts() -> str:
    """The `<script>` elements a page with charts ends with: the vendored libraries, then what
    draws its charts. Read from the package once per process."""
    folder = resources.files("aioflow") / "cards_static"
    parts = []
    for name in VEGA_FILES:
        text = (folder / name).read_text(encoding="utf-8")
        # The map files are not vendored: a browser's developer tools would look for them.
        text = re.sub(r"\s*//# sourceMappingURL=\S+\s*$", "", text)
        # Inline, `</script` would end the element (the bundles hold none; kept so if they do).
        text = re.sub(r"</(script)", r"<\\/\1", text, flags=re.IGNORECASE)
        parts.append(f"<script>{text}</script>")
    parts.append(f"<script>{_DRAW}</script>")
    return "".join(parts)


def page(title: str, body: str, *, card_type: str, card_id: str | None) -> str:
    """A whole card page around `body` (already HTML), titled `title` (plain text); with the
    chart libraries when `body` holds a VegaChart."""
    marks = f'data-card-type="{escape(card_type)}"'
    if card_id is not None:
        marks += f' data-card-id="{escape(card_id)}"'
    scripts = chart_scripts() if CHART_MARK in body else ""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No icon to fetch: an empty one, so a browser asks no server for /favicon.ico.
        '<link rel="icon" href="data:,">'
        f"<style>{_CSS}</style></head>"
        f'<body><main class="aioflow-card" {marks}>{body}</main>{scripts}</body></html>\n'
    )


def row(inner: str, *, css: str = "") -> str:
    """One row of a card: components are laid out one under the other."""
    classes = f"af-row {css}" if css else "af-row"
    return f'<div class="{classes}">{inner}</div>'


# -- Markdown (a safe subset: headings, emphasis, code, links, lists, paragraphs) ---------------

_INLINE = [
    (re.compile(r"`([^`]+)`"), r"<code>\1</code>"),
    (re.compile(r"\*\*(.+?)\*\*"), r"<strong>\1</strong>"),
    (re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?![\w*])"), r"<em>\1</em>"),
    (re.compile(r"(?<!\w)_(?!\s)(.+?)(?<!\s)_(?!\w)"), r"<em>\1</em>"),
    # Only http(s) and relative targets: a javascript: link must not become clickable.
    (re.compile(r"\[([^\]]+)\]\(((?:https?://|/|#)[^)\s]*)\)"), r'<a href="\2">\1</a>'),
]


def _inline(text: str) -> str:
    out = escape(text)
    for pattern, repl in _INLINE:
        out = pattern.sub(repl, out)
    return out


def markdown(text: str) -> str:
    """HTML of `text` read as Markdown; everything in it is escaped first, so no HTML (and no
    script) of the text's own ever reaches the page."""
    parts: list[str] = []
    paragraph: list[str] = []
    items: list[str] = []
    code: list[str] | None = None

    def flush() -> None:
        if paragraph:
            parts.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph.clear()
        if items:
            parts.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in items) + "</ul>")
            items.clear()

    for line in str(text).splitlines():
        if code is not None:
            if line.strip().startswith("```"):
                parts.append(f"<pre><code>{escape(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        stripped = line.strip()
        heading = re.match(r"(#{1,6})\s+(.*)", stripped)
        if stripped.startswith("```"):
            flush()
            code = []
        elif heading:
            flush()
            level = len(heading.group(1))
            parts.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
        elif re.match(r"[-*+]\s+", stripped):
            if paragraph:
                flush()
            items.append(re.sub(r"^[-*+]\s+", "", stripped))
        elif not stripped:
            flush()
        else:
            if items:
                flush()
            paragraph.append(stripped)
    if code is not None:
        parts.append(f"<pre><code>{escape(chr(10).join(code))}</code></pre>")
    flush()
    return "".join(parts)


# -- images -------------------------------------------------------------------------------------

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),
    (b"<svg", "image/svg+xml"),
    (b"<?xml", "image/svg+xml"),
]


def image_type(data: bytes) -> str | None:
    """The MIME type of image bytes, from their first bytes; None when not an image we know."""
    for magic, mime in _MAGIC:
        if data.startswith(magic):
            return mime
    return None


def data_uri(data: bytes, mime: str) -> str:
    """`data:` URI of the bytes (an image placed inline in the page)."""
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def png_from_array(array: Any) -> bytes:
    """PNG bytes of an image-shaped array (H x W grey, or H x W x 3/4 colour, integers 0-255 or
    floats 0-1), written with zlib: no imaging library needed."""
    shape = tuple(array.shape)
    if len(shape) == 2:
        channels = 1
    elif len(shape) == 3 and shape[2] in (3, 4):
        channels = shape[2]
    else:
        raise ValueError(f"an image is H x W or H x W x 3/4, not {shape}")
    height, width = shape[0], shape[1]
    kind = getattr(getattr(array, "dtype", None), "kind", "u")
    values = array.tolist()
    scale = 255.0 if kind == "f" else 1.0

    def byte(v: Any) -> int:
        return max(0, min(255, round(float(v) * scale)))

    raw = bytearray()
    for r in values:
        raw.append(0)  # filter type: none
        for px in r:
            if channels == 1:
                raw.append(byte(px))
            else:
                raw.extend(byte(c) for c in px)
    color = {1: 0, 3: 2, 4: 6}[channels]

    def chunk(tag: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + tag
            + body
            + struct.pack(">I", zlib.crc32(tag + body) & 0xFFFFFFFF)
        )

    header = struct.pack(">IIBBBBB", width, height, 8, color, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 6))
        + chunk(b"IEND", b"")
    )


def image_bytes(value: Any) -> bytes | None:
    """PNG (or the original) bytes when `value` is an image: image bytes, a PIL image, a
    matplotlib figure, or an image-shaped numpy array of at most 4 million pixels; else None."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value) if image_type(bytes(value)) else None
    buf = io.BytesIO()
    if callable(getattr(value, "savefig", None)):  # a matplotlib Figure
        value.savefig(buf, format="png")
        return buf.getvalue()
    if callable(getattr(value, "save", None)) and hasattr(value, "mode") and hasattr(value, "size"):
        value.save(buf, format="PNG")  # a PIL Image
        return buf.getvalue()
    shape = getattr(value, "shape", None)
    dtype = getattr(getattr(value, "dtype", None), "kind", None)
    if (
        isinstance(shape, tuple)
        and dtype in ("u", "i", "f")
        and (len(shape) == 2 or (len(shape) == 3 and shape[2] in (3, 4)))
        and shape[0] * shape[1] <= 4_000_000
        and min(shape[0], shape[1]) >= 2
        and (dtype == "u" or len(shape) == 3)  # a 2-D float/int array is data, not a picture
    ):
        return png_from_array(value)
    return None


# -- previews -----------------------------------------------------------------------------------


def short_repr(value: Any, limit: int = PREVIEW_CHARS) -> str:
    """`repr(value)` cut at `limit` characters (saying how long it was)."""
    try:
        text = repr(value)
    except Exception as exc:  # a broken __repr__ must not break the card
        return f"<repr failed: {type(exc).__name__}: {exc}>"
    if len(text) > limit:
        return f"{text[:limit]}... ({len(text):,} characters)"
    return text


def frame_table(frame: Any) -> str | None:
    """An HTML table of the first rows and columns of a pandas or polars data frame (duck-typed:
    `columns`, `shape` and `head`), or None for anything else."""
    columns = getattr(frame, "columns", None)
    shape = getattr(frame, "shape", None)
    head = getattr(frame, "head", None)
    if columns is None or not callable(head) or not isinstance(shape, tuple) or len(shape) != 2:
        return None
    try:
        names = [str(c) for c in list(columns)[:PREVIEW_COLUMNS]]
        top = head(PREVIEW_ROWS)
        if hasattr(top, "iter_rows"):  # polars
            rows = [list(r)[:PREVIEW_COLUMNS] for r in top.iter_rows()]
        else:  # pandas
            rows = [list(r)[:PREVIEW_COLUMNS] for r in top.itertuples(index=False)]
    except Exception:
        return None
    return table_html(names, rows) + (
        f'<p class="af-muted">{shape[0]:,} rows x {shape[1]:,} columns</p>'
    )


def table_html(headers: list[str] | None, rows: list[list[Any]]) -> str:
    """An HTML table; cells that are components render themselves, others are escaped text."""
    head = ""
    if headers:
        head = "<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in headers) + "</tr></thead>"
    body = "".join("<tr>" + "".join(f"<td>{cell_html(c)}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table>{head}<tbody>{body}</tbody></table>"


def cell_html(value: Any) -> str:
    """A table cell: a component's HTML, or the value's text, escaped."""
    render = getattr(value, "render", None)
    if callable(render) and getattr(value, "is_card_component", False):
        return str(render())
    return escape(value if isinstance(value, str) else short_repr(value, 500))


def preview(value: Any) -> str:
    """A bounded HTML preview of any value: a table for a data frame, an image for an image,
    else the start of its repr."""
    table = frame_table(value)
    if table is not None:
        return table
    try:
        data = image_bytes(value)
    except Exception:
        data = None
    if data is not None:
        mime = image_type(data) or "image/png"
        return f'<img alt="" style="max-width:100%" src="{data_uri(data, mime)}">'
    return f"<pre>{escape(short_repr(value))}</pre>"

"""The components a card is built from, as Metaflow's `metaflow.cards` names them.

    from aioflow.cards import Markdown, Table, Image, ProgressBar
    current.card.append(Markdown("# Results"))
    current.card.append(Table([[1, 2], [3, 4]], headers=["a", "b"]))

Each component renders itself to an HTML fragment (`render()`); a component whose rendering
fails shows an error in its place instead of failing the card (`render_safely`). Nothing here
loads from the network: images are inlined, and a VegaChart's spec is kept in the page as JSON,
drawn by the chart libraries the page then carries (`card_html.chart_scripts`).
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from .card_html import (
    CHART_MARK,
    data_uri,
    escape,
    frame_table,
    image_bytes,
    image_type,
    markdown,
    preview,
    short_repr,
    table_html,
)
from .tracebacks import format_exception


class MetaflowCardComponent:
    """Base class of card components: `render()` returns the component's HTML."""

    #: Lets a Table tell components among its cells from plain values.
    is_card_component = True

    def render(self) -> str:
        """The component's HTML fragment."""
        raise NotImplementedError

    def render_safely(self) -> str:
        """`render()`, or an error box when it raises: one broken component does not take the
        rest of its card with it."""
        try:
            return self.render()
        except Exception as exc:
            return Error(exc, title=f"{type(self).__name__} could not be rendered").render()


class Markdown(MetaflowCardComponent):
    """Text formatted as Markdown (headings, emphasis, code, links, lists)."""

    def __init__(self, text: str = "") -> None:
        self.text = text

    def update(self, text: str) -> None:
        """Replace the text (seen after the next `current.card.refresh()`)."""
        self.text = text

    def render(self) -> str:
        """The text as HTML, everything in it escaped first."""
        return markdown(self.text)


class Artifact(MetaflowCardComponent):
    """A value shown as in the default card: its repr (size-capped) or a table/image preview."""

    def __init__(self, artifact: Any, name: str | None = None, compress: bool = True) -> None:
        self.artifact = artifact
        self.name = name
        #: Accepted for Metaflow's signature; previews are always capped.
        self.compress = compress

    def update(self, artifact: Any) -> None:
        """Show another value."""
        self.artifact = artifact

    def render(self) -> str:
        """The name (when given) above the preview."""
        title = f"<h3>{escape(self.name)}</h3>" if self.name else ""
        return title + preview(self.artifact)


class Table(MetaflowCardComponent):
    """Rows of cells (values or other components), with optional column headers."""

    def __init__(self, data: Any = None, headers: list[str] | None = None) -> None:
        self.data = [list(r) for r in (data or [])]
        self.headers = list(headers) if headers is not None else None
        self._frame: Any = None

    @classmethod
    def from_dataframe(cls, dataframe: Any = None, truncate: bool = True) -> Table:
        """A table of a pandas or polars data frame's first rows."""
        table = cls()
        table._frame = dataframe
        return table

    def update(self, data: Any) -> None:
        """Replace the rows."""
        self.data = [list(r) for r in (data or [])]

    def render(self) -> str:
        """An HTML table."""
        if self._frame is not None:
            html = frame_table(self._frame)
            if html is None:
                raise TypeError(f"not a data frame: {type(self._frame).__name__}")
            return html
        return table_html(self.headers, self.data)


class Image(MetaflowCardComponent):
    """An image from its bytes (PNG, JPEG, GIF, WebP, SVG), placed inline in the card."""

    def __init__(self, src: bytes | None = None, label: str | None = None) -> None:
        self.src = src
        self.label = label

    @classmethod
    def from_pil_image(cls, pilimage: Any, label: str | None = None) -> Image:
        """An image of a PIL image (saved as PNG)."""
        return cls(image_bytes(pilimage), label)

    @classmethod
    def from_matplotlib(cls, plot: Any, label: str | None = None) -> Image:
        """An image of a matplotlib figure (or of an Axes' figure), saved as PNG."""
        figure = getattr(plot, "figure", plot) if not hasattr(plot, "savefig") else plot
        return cls(image_bytes(figure), label)

    def update(self, src: bytes, label: str | None = None) -> None:
        """Show other image bytes."""
        self.src = src
        if label is not None:
            self.label = label

    def render(self) -> str:
        """An `<img>` with a data URI, its label below."""
        data = bytes(self.src or b"")
        mime = image_type(data)
        if mime is None:
            raise ValueError("Image takes the bytes of a PNG, JPEG, GIF, WebP or SVG image")
        label = f'<div class="af-muted">{escape(self.label)}</div>' if self.label else ""
        alt = escape(self.label or "")
        return f'<img alt="{alt}" style="max-width:100%" src="{data_uri(data, mime)}">{label}'


def _is_altair_chart(value: Any) -> bool:
    """True for a chart of Altair (any of its chart classes), told by its module: aioflow does
    not import altair."""
    module = type(value).__module__ or ""
    return module.split(".")[0] == "altair" and callable(getattr(value, "to_dict", None))


def _spec_of(value: Any) -> Any:
    """A Vega-Lite spec as a dict: an Altair chart's `to_dict()`; anything else as given (a
    value that is not a dict is refused when the chart is rendered)."""
    return value.to_dict() if _is_altair_chart(value) else value


def _json_ready(value: Any) -> Any:
    """`value` with what JSON cannot hold made plain: NumPy numbers and arrays as Python's,
    dates as ISO text, NaN and infinities as null (a missing value to Vega-Lite), other objects
    as their str."""
    if isinstance(value, str) or value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    if callable(getattr(value, "tolist", None)):  # a NumPy scalar or array
        return _json_ready(value.tolist())
    if callable(getattr(value, "isoformat", None)):  # datetime, date, pandas' Timestamp
        return value.isoformat()
    return str(value)


class VegaChart(MetaflowCardComponent):
    """A Vega-Lite chart: its spec as a dict, or an Altair chart (`from_altair_chart`).

        current.card.append(VegaChart({"mark": "bar", "data": {"values": rows}, ...}))

    The card draws it offline: a page holding a chart carries the vendored Vega, Vega-Lite and
    vega-embed, and only then. `show_controls` adds vega-embed's menu (export as SVG/PNG, view
    the source). `update(spec)` and `current.card.refresh()` redraw a live card.
    """

    def __init__(self, spec: Any, show_controls: bool = False) -> None:
        self.spec = _spec_of(spec)
        self.show_controls = show_controls

    @classmethod
    def from_altair_chart(cls, altair_chart: Any) -> VegaChart:
        """The chart of an Altair chart object (ValueError for anything else)."""
        if not _is_altair_chart(altair_chart):
            kind = f"{type(altair_chart).__module__}.{type(altair_chart).__qualname__}"
            raise ValueError(f"{kind} is not an Altair chart.")
        return cls(altair_chart)

    def update(self, spec: Any = None) -> None:
        """Show another spec (a dict or an Altair chart); None keeps the one shown."""
        if spec is not None:
            self.spec = _spec_of(spec)

    def render(self) -> str:
        """A box the page's scripts draw the chart in, its spec as JSON beside it."""
        if not isinstance(self.spec, Mapping):
            raise TypeError(
                "VegaChart takes a Vega-Lite spec (a dict) or an Altair chart, not "
                f"{type(self.spec).__name__}."
            )
        text = json.dumps(_json_ready(self.spec), ensure_ascii=False, separators=(",", ":"))
        # `<` only appears inside JSON strings, where \u003c is the same character: nothing in
        # the spec can end the script element or open a comment there.
        text = text.replace("<", "\\u003c")
        actions = "true" if self.show_controls else "false"
        return (
            f'{CHART_MARK} data-actions="{actions}"><script type="application/json">{text}'
            '</script><div class="af-vega"></div></div>'
        )


class ProgressBar(MetaflowCardComponent):
    """A bar filled to `value` of `max`: update it and call `current.card.refresh()`."""

    def __init__(
        self,
        max: float = 100,
        label: str | None = None,
        value: float = 0,
        unit: str | None = None,
        metadata: str | None = None,
    ) -> None:
        self.max = max
        self.label = label
        self.value = value
        self.unit = unit
        self.metadata = metadata

    def update(self, new_value: float, metadata: str | None = None) -> None:
        """Move the bar to `new_value`."""
        self.value = new_value
        if metadata is not None:
            self.metadata = metadata

    def render(self) -> str:
        """The label, the bar and `value/max unit`."""
        share = 0.0 if not self.max else max(0.0, min(1.0, float(self.value) / float(self.max)))
        unit = f" {escape(self.unit)}" if self.unit else ""
        label = f"<div><strong>{escape(self.label)}</strong></div>" if self.label else ""
        meta = f'<div class="af-muted">{escape(self.metadata)}</div>' if self.metadata else ""
        return (
            f'{label}<div class="af-progress" role="progressbar" aria-valuenow="{share * 100:.0f}">'
            f'<div style="width:{share * 100:.1f}%"></div></div>'
            f"<div>{escape(self.value)} / {escape(self.max)}{unit}</div>{meta}"
        )


class ValueBox(MetaflowCardComponent):
    """One headline value with a title and a subtitle (a metric, a count)."""

    def __init__(
        self,
        title: str | None = None,
        value: Any = "",
        subtitle: str | None = None,
        theme: str | None = None,
        change_indicator: str | None = None,
        on_click: Any = None,
    ) -> None:
        self.title = title
        self.value = value
        self.subtitle = subtitle
        self.theme = theme
        self.change_indicator = change_indicator
        self.on_click = on_click

    def update(self, value: Any = None, subtitle: str | None = None) -> None:
        """Show a new value (and subtitle)."""
        if value is not None:
            self.value = value
        if subtitle is not None:
            self.subtitle = subtitle

    def render(self) -> str:
        """The title, the value large, the subtitle and change indicator small."""
        parts = []
        if self.title:
            parts.append(f'<div class="af-muted">{escape(self.title)}</div>')
        parts.append(f'<div class="af-value">{escape(self.value)}</div>')
        extra = " ".join(escape(p) for p in (self.change_indicator, self.subtitle) if p)
        if extra:
            parts.append(f'<div class="af-muted">{extra}</div>')
        return "".join(parts)


class PythonCode(MetaflowCardComponent):
    """Python source: a function's (or class's) code, or a string of code."""

    def __init__(self, code: Callable[..., Any] | None = None, code_string: str | None = None):
        if code_string is None and code is not None:
            code_string = code if isinstance(code, str) else inspect.getsource(code)
        if code_string is None:
            raise ValueError("PythonCode takes code (a function) or code_string")
        self.code_string = code_string

    def render(self) -> str:
        """The code, escaped, in a `<pre>`."""
        return f'<pre><code class="language-python">{escape(self.code_string)}</code></pre>'


class JSONViewer(MetaflowCardComponent):
    """JSON-like data, pretty-printed (collapsible)."""

    def __init__(
        self,
        data: Any,
        collapsible: bool = True,
        max_height: str | None = None,
        show_copy_button: bool = False,
    ) -> None:
        self.data = data
        self.collapsible = collapsible
        self.max_height = max_height
        self.show_copy_button = show_copy_button

    def update(self, data: Any) -> None:
        """Show other data."""
        self.data = data

    def render(self) -> str:
        """Indented JSON (values JSON cannot hold shown as their str)."""
        text = escape(json.dumps(self.data, indent=2, default=str, ensure_ascii=False))
        style = (
            f' style="max-height:{escape(self.max_height)};overflow:auto"'
            if self.max_height
            else ""
        )
        body = f"<pre{style}>{text}</pre>"
        if self.collapsible:
            return f"<details open><summary>JSON</summary>{body}</details>"
        return body


class Error(MetaflowCardComponent):
    """An exception with its traceback, in red."""

    def __init__(self, exception: BaseException, title: str | None = None) -> None:
        self.exception = exception
        self.title = title

    def render(self) -> str:
        """The title, then the traceback (or `Type: message` when it has none)."""
        exc = self.exception
        text = format_exception(exc) if isinstance(exc, BaseException) else short_repr(exc)
        title = f"<h3>{escape(self.title)}</h3>" if self.title else ""
        return f'<div class="af-error">{title}<pre>{escape(text)}</pre></div>'


#: Every component `aioflow.cards` exports, by name.
COMPONENTS = (
    Markdown,
    Table,
    Image,
    Artifact,
    VegaChart,
    ProgressBar,
    ValueBox,
    PythonCode,
    JSONViewer,
    Error,
)

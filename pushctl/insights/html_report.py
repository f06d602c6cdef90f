"""``runs report --html``: one self-contained page (no script, no network) with the report's charts.

The charts are drawn by matplotlib (the optional extra ``pushctl[report]``) as SVG, inlined in the
page: the funnel, deliveries and opens over time, the latency distribution, outcomes by reason,
and each variant's rates with their 95% intervals. Text stays text (``svg.fonttype: none``), so the
page is searchable and small; every user-supplied string (campaign id, variant names, reasons) is
escaped, in the HTML by :func:`html.escape` and in the SVG by matplotlib's XML writer, with
mathtext off (a variant named ``$x$`` is text, not a formula).
"""

from __future__ import annotations

import html
import io
import re
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pushctl import clock
from pushctl.errors import InputError
from pushctl.insights.report import CampaignReport, Funnel, Rate
from pushctl.insights.verdict import percent

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["render_html", "write_html"]

INSTALL_HINT = "pip install 'pushctl[report]'"
_COLOURS = ["#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00"]
_STAGES = ("targeted", "sent", "delivered", "opened", "converted")


def write_html(report: CampaignReport, path: Path) -> None:
    """Render the report and write it to ``path`` (aggregates only: no token or user id in it)."""
    page = render_html(report)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise InputError(f"cannot write the report: {exc.strerror}", file=path, field="--html") from None


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise InputError(
            "the HTML report draws its charts with matplotlib, which is not installed",
            field="--html",
            hint=f"{INSTALL_HINT}, or leave out --html",
        ) from None
    return matplotlib


@contextmanager
def _style(matplotlib: Any, salt: str) -> Iterator[None]:
    settings = {
        "svg.fonttype": "none",
        "svg.hashsalt": salt,  # stable, distinct element ids for each chart of the page
        "text.parse_math": False,
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }
    with matplotlib.rc_context(settings), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a glyph missing from the fonts is not worth a warning here
        yield


def _svg(matplotlib: Any, name: str, draw: Callable[[Axes], None], height: float = 3.0) -> str:
    from matplotlib.figure import Figure

    with _style(matplotlib, f"pushctl-{name}"):
        figure = Figure(figsize=(8, height), layout="constrained")
        draw(figure.subplots())
        buffer = io.StringIO()
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # no XML declaration or DOCTYPE inside HTML


def _funnel_chart(funnel: Funnel) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        values = [getattr(funnel, stage) for stage in _STAGES]
        bars = ax.barh(list(_STAGES)[::-1], values[::-1], color=_COLOURS[0])
        ax.bar_label(bars, labels=[f"{v:,}" for v in values[::-1]], padding=3)
        ax.set_xlabel("devices")
        ax.set_title("Funnel")
        ax.set_xlim(0, max([*values, 1]) * 1.15)

    return draw


def _hourly(times: list[float], start: float) -> tuple[list[float], list[int]]:
    if not times:
        return [], []
    hours = [int((t - start) // 3600) for t in times]
    last = max(hours)
    counts = [0] * (last + 1)
    for h in hours:
        if h >= 0:
            counts[h] += 1
    return [float(h) for h in range(last + 1)], counts


def _timeline_chart(report: CampaignReport) -> Callable[[Axes], None]:
    data = report.data
    assert data is not None
    start = min([*data.deliveries, *data.opens] or [0.0])

    def draw(ax: Axes) -> None:
        # Deliveries come in a burst, opens trickle in: each on its own axis, both linear.
        x, y = _hourly(data.deliveries, start)
        if x:
            ax.bar(x, y, width=0.9, align="edge", color=_COLOURS[0], alpha=0.5, label="deliveries")
        ax.set_ylabel("deliveries per hour")
        engagement = ax.twinx()
        engagement.spines["right"].set_visible(True)
        for label, times, colour in (
            ("opens", data.opens, _COLOURS[3]),
            ("conversions", data.conversions, _COLOURS[2]),
        ):
            x, y = _hourly(times, start)
            if x:
                engagement.step([*x, x[-1] + 1], [*y, y[-1]], where="post", label=label, color=colour)
        engagement.set_ylabel("opens and conversions per hour")
        origin = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M UTC")
        ax.set_xlabel(f"hours after the first delivery ({origin})")
        ax.set_title("Deliveries and opens over time")
        handles = [h for a in (ax, engagement) for h in a.get_legend_handles_labels()[0]]
        labels = [label for a in (ax, engagement) for label in a.get_legend_handles_labels()[1]]
        if handles:
            engagement.legend(handles, labels, loc="upper right")

    return draw


def _latency_chart(latencies: list[float]) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        ax.hist(latencies, bins=40, color=_COLOURS[0])
        ordered = sorted(latencies)
        for q, style in ((0.5, "--"), (0.95, ":")):
            value = ordered[min(len(ordered) - 1, int(q * len(ordered)))]
            ax.axvline(value, color=_COLOURS[1], linestyle=style, label=f"p{int(q * 100)} {value:,.0f} ms")
        ax.set_xlabel("latency (ms, first attempt to answer)")
        ax.set_ylabel("devices")
        ax.set_title("Latency distribution")
        ax.legend()

    return draw


def _reasons_chart(reasons: list[tuple[str, str, int]]) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        shown = reasons[:12][::-1]
        labels = [f"{o}: {r}" if r else o for o, r, _ in shown]
        bars = ax.barh(labels, [n for _, _, n in shown], color=_COLOURS[2])
        ax.bar_label(bars, labels=[f"{n:,}" for _, _, n in shown], padding=3)
        ax.set_xlabel("devices")
        ax.set_title("Outcomes by reason")

    return draw


def _variants_chart(report: CampaignReport) -> Callable[[Axes], None]:
    def draw(ax: Axes) -> None:
        names = [f.label for f in report.variants]
        series = (
            ("open rate", "open_rate", _COLOURS[0]),
            ("conversion rate", "conversion_rate", _COLOURS[2]),
        )
        for offset, (label, rate_of, colour) in enumerate(series):
            rates: list[Rate] = [getattr(f, rate_of) for f in report.variants]
            x = [i + (offset - 0.5) * 0.3 for i in range(len(names))]
            y = [100 * r.value for r in rates]
            low = [100 * (r.value - r.interval[0]) for r in rates]
            high = [100 * (r.interval[1] - r.value) for r in rates]
            ax.errorbar(x, y, yerr=[low, high], fmt="o", capsize=4, color=colour, label=f"{label}, 95% CI")
        ax.set_xticks(range(len(names)), names)
        ax.set_xlim(-0.6, len(names) - 0.4)
        ax.set_ylim(bottom=0)
        ax.set_ylabel("% of delivered")
        ax.set_title("Rates per variant")
        ax.legend()

    return draw


def _table(report: CampaignReport) -> str:
    rows = [report.total, *report.platforms, *report.variants]
    if report.rollout is not None:
        rows.append(report.rollout)
    head = "".join(
        f"<th>{h}</th>" for h in ("devices", *_STAGES, "open rate (95% CI)", "conversion (95% CI)")
    )
    body = []
    for f in rows:
        label = f"variant {f.label}" if f in report.variants else f.label
        cells = [f"<th scope='row'>{html.escape(label)}</th>"]
        cells += [f"<td>{getattr(f, stage):,}</td>" for stage in _STAGES]
        cells += [f"<td>{_rate(f.open_rate)}</td>", f"<td>{_rate(f.conversion_rate)}</td>"]
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _rate(rate: Rate) -> str:
    if not rate.trials:
        return "–"
    low, high = rate.interval
    return html.escape(f"{percent(rate.value)} ({percent(low)}–{percent(high)})")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:60rem;
color:#222;padding:0 1rem}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;font-size:.9rem}
th,td{padding:.25rem .6rem;border-bottom:1px solid #ddd;text-align:right}th[scope=row]{text-align:left}
.verdict{background:#f3f6fb;border-left:4px solid #3366cc;padding:.6rem 1rem}
figure{margin:1.5rem 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:.85rem}
.note{color:#555}
"""


def render_html(report: CampaignReport) -> str:
    """The page as a string."""
    matplotlib = _matplotlib()
    data = report.data
    assert data is not None, "build the report from the journal's data"
    charts: list[tuple[str, str]] = [("funnel", _svg(matplotlib, "funnel", _funnel_chart(report.total)))]
    if data.deliveries or data.opens:
        charts.append(("timeline", _svg(matplotlib, "timeline", _timeline_chart(report))))
    if data.latencies_ms:
        charts.append(("latency", _svg(matplotlib, "latency", _latency_chart(data.latencies_ms))))
    if data.reasons:
        height = 1.2 + 0.3 * min(12, len(data.reasons))
        charts.append(("reasons", _svg(matplotlib, "reasons", _reasons_chart(data.reasons), height)))
    if report.variants:
        charts.append(("variants", _svg(matplotlib, "variants", _variants_chart(report))))
    campaign = html.escape(report.campaign_id)
    verdict = (
        report.verdict.sentence if report.verdict is not None else "no A/B comparison (one variant or none)"
    )
    generated = clock.now().strftime("%Y-%m-%d %H:%M UTC")
    figures = "\n".join(f'<figure id="chart-{name}">{svg}</figure>' for name, svg in charts)
    ab = ""
    if report.ab_test:
        winner = report.ab_test["winner"]
        share = f"{100 * report.ab_test['fraction']:g}%"
        rest = f"the winner <b>{html.escape(winner)}</b> went to the rest." if winner else "the rest wait."
        ab = f"<p class='note'>A/B test: {share} of the devices got the variants; {rest}</p>"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="pushctl runs report">
<title>pushctl report: {campaign}</title>
<style>{_CSS}</style>
</head>
<body>
<h1>Campaign <code>{campaign}</code></h1>
<p class="note">Generated {generated}; metric: {html.escape(report.metric)}. Opens and conversions are those
attributed by <code>pushctl engage import</code>.</p>
<h2>Funnel</h2>
{_table(report)}
<p class="verdict">{_inline_code(verdict)}</p>
{ab}
<h2>Charts</h2>
{figures}
</body>
</html>
"""


def _inline_code(sentence: str) -> str:
    """The verdict sentence, escaped, with its `names` in <code>."""
    return re.sub(r"`([^`]*)`", r"<code>\1</code>", html.escape(sentence))

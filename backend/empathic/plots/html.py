"""The plot as an interactive page (plotly): the panels of png.py on one zoomable time axis;
hovering a moment of a face track or person shows every share the analysis holds for it then.

The page embeds plotly.js, so it opens offline and loads nothing from anywhere.
"""

from __future__ import annotations

import html
import statistics

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..taxonomy import EMOTIONS_BY_ID
from .series import EMOTION_COUNT, SERIES_COLOURS, EmotionPanel, Moment, PlotData, ValuePanel, VoicePanel, \
    panel_height_in

PIXELS_PER_IN = 110
DASHES = ("solid", "dash", "dot", "dashdot")
MARKERS_BELOW = 60
DIV_ID = "empathic-plot"  # fixed, not plotly's random id: the same analysis gives the same page


def figure(data: PlotData) -> go.Figure:
    panels = data.panels
    heights = [panel_height_in(p) for p in panels] or [1.5]
    titles = [_title(p) for p in panels] or ["nothing to plot: " + "; ".join(data.notes)]
    fig = make_subplots(rows=len(heights), cols=1, shared_xaxes=True, row_heights=heights, subplot_titles=titles,
                        vertical_spacing=min(0.05, 0.5 / len(heights)))
    for row, panel in enumerate(panels, start=1):
        if isinstance(panel, EmotionPanel):
            _emotions(fig, row, panel, data.duration_s)
        elif isinstance(panel, VoicePanel):
            _voices(fig, row, panel)
        else:
            _values(fig, row, panel)
    _legend_beside_each_panel(fig, len(heights))
    for cut in data.cuts_s:
        fig.add_vline(x=cut, row="all", col=1, line={"color": "#666", "dash": "dash", "width": 1})
    notes = "".join(f"<br><sup>{html.escape(note)}</sup>" for note in data.notes if panels)
    fig.update_layout(
        title={"text": html.escape(data.title) + notes, "x": 0.01, "font": {"size": 15}},
        height=int(sum(heights) * PIXELS_PER_IN) + 160, template="plotly_white",
        # closest: a horizontal voice bar answers where it is hovered, and so does the band of
        # each moment of a track (see _moment_bands)
        hovermode="closest", barmode="overlay", hoverlabel={"font": {"size": 11}, "align": "left"},
        uniformtext={"mode": "hide", "minsize": 8}, margin={"t": 90 + 18 * len(data.notes), "r": 260})
    fig.update_xaxes(range=[0, max(data.duration_s, 1e-3)])
    fig.update_xaxes(title_text="time (s)", row=len(heights), col=1)
    return fig


def _legend_beside_each_panel(fig: go.Figure, rows: int) -> None:
    """One legend per panel, level with it (one legend for all would list every panel's lines in
    one column as tall as the page)."""
    for row in range(1, rows + 1):
        suffix = "" if row == 1 else str(row)
        top = fig.layout[f"yaxis{suffix}"].domain[1]
        fig.layout[f"legend{suffix}"] = {"x": 1.01, "xanchor": "left", "y": top, "yanchor": "top",
                                         "font": {"size": 10}, "tracegroupgap": 0}
    for title in fig.layout.annotations:  # the panel titles, left-aligned as in the PNG
        title.update(x=0, xanchor="left", font={"size": 12})


def page(fig: go.Figure) -> str:
    return fig.to_html(include_plotlyjs=True, full_html=True, div_id=DIV_ID,
                       config={"displaylogo": False, "responsive": True})


def _title(panel) -> str:
    if isinstance(panel, EmotionPanel) and not panel.complete:
        return f"{panel.title} (top {panel.listed} of {EMOTION_COUNT} in the file)"
    return panel.title


def moment_text(heading: str, moment: Moment, listed_of: int) -> str:
    """Every share the document lists at that moment, best first."""
    lines = [f"<b>{html.escape(heading)}</b>"]
    lines += [f"{EMOTIONS_BY_ID[e].name}: {share:.3f}" for e, share in moment.shares]
    if len(moment.shares) < EMOTION_COUNT:
        lines.append(f"<i>{len(moment.shares)} of {EMOTION_COUNT} emotions: the file was written with "
                     f"--top-k {listed_of}</i>")
    return "<br>".join(lines)


def _legend(row: int) -> str:
    return "legend" if row == 1 else f"legend{row}"


def _emotions(fig: go.Figure, row: int, panel: EmotionPanel, duration_s: float) -> None:
    for line in panel.lines:
        fig.add_trace(go.Scatter(
            x=line.times_s, y=line.shares, mode="lines+markers" if len(line.times_s) < MARKERS_BELOW else "lines",
            name=f"{line.name} ({line.mean_share:.2f})", line={"color": line.colour, "width": 1.6},
            marker={"size": 4}, connectgaps=False, hoverinfo="skip", legend=_legend(row)), row=row, col=1)
    fig.add_trace(_moment_bands(panel, duration_s), row=row, col=1)
    fig.update_yaxes(title_text="share", rangemode="tozero", row=row, col=1)


def _moment_bands(panel: EmotionPanel, duration_s: float) -> go.Bar:
    """An invisible full-height bar around each moment that carries its hover text: hovering
    anywhere above or below a moment shows all its shares."""
    times = [m.time_s for m in panel.moments]
    steps = [b - a for a, b in zip(times, times[1:]) if b > a]
    half = (statistics.median(steps) if steps else max(duration_s, 1.0) / 100) / 2
    centres, widths = [], []
    for index, t in enumerate(times):
        left = min(half, (t - times[index - 1]) / 2) if index > 0 else half
        right = min(half, (times[index + 1] - t) / 2) if index + 1 < len(times) else half
        left, right = max(left, half / 50), max(right, half / 50)
        centres.append(t + (right - left) / 2)
        widths.append(left + right)
    top = max((share for line in panel.lines for share in line.shares if share is not None), default=1.0)
    return go.Bar(x=centres, y=[top] * len(times), width=widths, base=0, name="all shares", showlegend=False,
                  marker={"color": "rgba(0,0,0,0)", "line": {"width": 0}},
                  hovertext=[moment_text(f"{panel.title}, {m.time_s:.2f} s", m, panel.listed) for m in panel.moments],
                  hoverinfo="text")


def _voices(fig: go.Figure, row: int, panel: VoicePanel) -> None:
    for index, label in enumerate(panel.rows):
        bars = [bar for bar in panel.bars if bar.row == label]
        fig.add_trace(go.Bar(
            y=[label] * len(bars), x=[bar.end_s - bar.start_s for bar in bars], base=[bar.start_s for bar in bars],
            orientation="h", width=0.6, name=label, showlegend=False,
            marker={"color": SERIES_COLOURS[index % len(SERIES_COLOURS)], "opacity": 0.75,
                    "line": {"color": "white", "width": 1}},  # back-to-back windows stay apart
            text=[bar.top_emotion or "" for bar in bars], textposition="inside", insidetextanchor="middle",
            hovertext=[moment_text(f"{label}, {bar.start_s:.2f}-{bar.end_s:.2f} s: voice", bar.moment, panel.listed)
                       for bar in bars], hoverinfo="text"), row=row, col=1)
    fig.update_yaxes(categoryorder="array", categoryarray=list(reversed(panel.rows)), row=row, col=1)


def _values(fig: go.Figure, row: int, panel: ValuePanel) -> None:
    for line in panel.lines:
        fig.add_trace(go.Scatter(
            x=line.times_s, y=line.values, mode="lines+markers" if len(line.times_s) < MARKERS_BELOW else "lines",
            name=f"{line.label}, {line.group}" if len(panel.groups) > 1 else line.label,
            line={"color": SERIES_COLOURS[panel.labels.index(line.label) % len(SERIES_COLOURS)],
                  "dash": DASHES[panel.groups.index(line.group) % len(DASHES)], "width": 1.4},
            marker={"size": 4}, connectgaps=False, legend=_legend(row),
            hovertemplate="%{fullData.name}: %{y:.3f} at %{x:.2f} s<extra></extra>"), row=row, col=1)

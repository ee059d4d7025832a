"""The plot as a static image (matplotlib): one panel per face track and person, voice segments,
dimensions and attributes, all on one time axis with the cuts across every panel."""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .series import SERIES_COLOURS, EmotionPanel, PlotData, ValuePanel, VoicePanel, panel_height_in

WIDTH_IN = 14.0
DPI = 100
LABEL_POINTS = 7
DASHES = ("-", "--", ":", "-.")
MARKERS_BELOW = 60  # points: fewer, and each is marked (one sample alone would draw nothing)


def figure(data: PlotData) -> Figure:
    """The figure, one axes per panel (one empty axes, with the notes, when there is nothing)."""
    heights = [panel_height_in(p) for p in data.panels] or [1.5]
    # A Figure with its own Agg canvas, not pyplot: no display, no global figure registry to leak.
    fig = Figure(figsize=(WIDTH_IN, sum(heights) + 0.9), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(heights), 1, sharex=True, squeeze=False, gridspec_kw={"height_ratios": heights})[:, 0]
    span = max(data.duration_s, 1e-3)
    axes[0].set_xlim(0, span)
    for ax, panel in zip(axes, data.panels):
        if isinstance(panel, EmotionPanel):
            _emotions(ax, panel)
        elif isinstance(panel, VoicePanel):
            _voices(ax, panel, span)
        else:
            _values(ax, panel)
        for cut in data.cuts_s:
            ax.axvline(cut, color="0.35", linestyle="--", linewidth=0.8, zorder=0)
    if not data.panels:
        axes[0].text(0.5, 0.5, "nothing to plot: " + "; ".join(data.notes), ha="center", va="center",
                     transform=axes[0].transAxes)
        axes[0].set_yticks([])
    axes[-1].set_xlabel("time (s)" + ("   dashed: cuts" if data.cuts_s else ""))
    fig.suptitle(data.title + "".join(f"\n{note}" for note in data.notes if data.panels),
                 fontsize=10, x=0.01, ha="left")
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" stamp: the same analysis gives the same bytes on the same machine.
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _legend(ax) -> None:
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7, frameon=False)


def _emotions(ax, panel: EmotionPanel) -> None:
    for line in panel.lines:
        values = [float("nan") if v is None else v for v in line.shares]
        ax.plot(line.times_s, values, color=line.colour, linewidth=1.3,
                marker="o" if len(values) < MARKERS_BELOW else None, markersize=2.5,
                label=f"{line.name} ({line.mean_share:.2f})")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("share", fontsize=8)
    ax.set_title(panel.title + ("" if panel.complete else f"  (top {panel.listed} of 40 in the file)"),
                 loc="left", fontsize=9)
    _legend(ax)


def _voices(ax, panel: VoicePanel, span: float) -> None:
    rows = {row: index for index, row in enumerate(panel.rows)}
    fig = ax.get_figure()
    # An estimate before layout: the axes span about 80 % of the figure's width.
    pixels_per_s = 0.8 * fig.get_figwidth() * fig.dpi / span
    character_px = 0.6 * LABEL_POINTS * fig.dpi / 72
    for bar in panel.bars:
        colour = SERIES_COLOURS[rows[bar.row] % len(SERIES_COLOURS)]
        ax.barh(rows[bar.row], bar.end_s - bar.start_s, left=bar.start_s, height=0.6, color=colour, alpha=0.75,
                edgecolor="white", linewidth=0.8)  # back-to-back windows stay apart
        label = bar.top_emotion
        if label and (bar.end_s - bar.start_s) * pixels_per_s > (len(label) + 2) * character_px:
            ax.text((bar.start_s + bar.end_s) / 2, rows[bar.row], label, ha="center", va="center",
                    fontsize=LABEL_POINTS, clip_on=True)
    ax.set_yticks(range(len(panel.rows)), panel.rows, fontsize=8)
    ax.set_ylim(len(panel.rows) - 0.5, -0.5)  # the first row on top
    ax.set_title(panel.title, loc="left", fontsize=9)


def _values(ax, panel: ValuePanel) -> None:
    for line in panel.lines:
        values = [float("nan") if v is None else v for v in line.values]
        colour = SERIES_COLOURS[panel.labels.index(line.label) % len(SERIES_COLOURS)]
        dash = DASHES[panel.groups.index(line.group) % len(DASHES)]
        ax.plot(line.times_s, values, color=colour, linestyle=dash, linewidth=1.2,
                marker="o" if len(values) < MARKERS_BELOW else None, markersize=2.5,
                label=f"{line.label}, {line.group}" if len(panel.groups) > 1 else line.label)
    ax.set_title(panel.title, loc="left", fontsize=9)
    _legend(ax)

"""Figures of an analysis: emotions over time per face track and person, voice segments, cuts.

series.py computes what is drawn from the JSON documents ``empathic annotate`` writes (pure: dicts
in, frozen dataclasses out); png.py (matplotlib) and html.py (plotly, interactive, offline) draw it.
"""

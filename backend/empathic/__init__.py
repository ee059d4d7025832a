"""Emotion pre-annotation of video and audio with LAION's Empathic Insight models.

The core (media, faces, models, scoring, results) takes arrays and typed options and returns
frozen dataclasses; Label Studio, servers, queues, files and environment variables stay in the
adapters (cli, exports, and later labelstudio).
"""

__version__ = "0.1.0"

"""Renderers: one `Report`, many outputs (markdown comment, JSON, SARIF, GitHub annotations)."""

from bot.report.render import FORMATS, render

__all__ = ["FORMATS", "render"]

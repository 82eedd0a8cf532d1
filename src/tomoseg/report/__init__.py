"""Reports: figures (PNG) and one self-contained HTML file."""

from .html import build_report

__all__ = ["build_report"]

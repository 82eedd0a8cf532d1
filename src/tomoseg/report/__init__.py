"""Reports: figures (PNG, SVG, PDF), result folders and one self-contained HTML file."""

from .analysis_folder import save_analysis
from .html import build_report

__all__ = ["build_report", "save_analysis"]

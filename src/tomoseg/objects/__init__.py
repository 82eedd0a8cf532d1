"""Objects: labelling, measurements, matching and analysis (no PyTorch)."""

from .analysis import Analysis, AnalysisOptions, analyze
from .labelling import label_chunked, label_objects
from .matching import detection_scores, match_objects, overlap_pairs
from .measure import measure_objects, select_objects, summarize, wadell_sphericity

__all__ = ["analyze", "Analysis", "AnalysisOptions", "label_objects", "label_chunked", "measure_objects",
           "select_objects", "summarize", "wadell_sphericity", "match_objects", "overlap_pairs",
           "detection_scores"]

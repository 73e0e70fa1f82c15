"""Radiology report NLP pipeline: spaCy components, the analysis contract and evaluation."""

from pipelines.pipeline import RadiologyPipeline, ReportInput, build_nlp
from pipelines.schema import AnalysisError, ReportAnalysis

__all__ = ["AnalysisError", "RadiologyPipeline", "ReportAnalysis", "ReportInput", "build_nlp"]

"""Radiology terminology: the lexicon of concepts with RadLex/SNOMED codes, and a normalizer."""

from terminology.lexicon import Concept, Kind, Lexicon, load_lexicon
from terminology.normalizer import ConceptMatch, normalize

__all__ = ["Concept", "ConceptMatch", "Kind", "Lexicon", "load_lexicon", "normalize"]

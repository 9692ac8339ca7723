"""The group's memory: each channel's history and documents, searchable only from that channel."""

from bot.memory.search import DEFAULT_MIN_COVERAGE, Memory, Passage
from bot.memory.terms import query_terms

__all__ = ["DEFAULT_MIN_COVERAGE", "Memory", "Passage", "query_terms"]

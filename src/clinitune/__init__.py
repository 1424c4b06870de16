"""clinitune: local, privacy-first fine-tuning of open LLMs on healthcare data."""

__version__ = "0.1.0"

"""bzzz-console: a terminal operator console for a fleet of LLM agents."""

__version__ = "0.1.0"

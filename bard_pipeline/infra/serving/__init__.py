"""Serving an exported student: vLLM's OpenAI server with the budget contract (`bard serve REF`)."""

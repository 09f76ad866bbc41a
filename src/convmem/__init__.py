"""convmem: long-term memory for LLM conversations."""

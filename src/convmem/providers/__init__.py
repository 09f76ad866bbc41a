"""Model providers: embedders (text -> vector), token counters and chat models (LLMs)."""

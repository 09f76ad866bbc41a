"""What memory understands beyond the words of each turn, without an LLM (and better with one).

    text.py          sentences and the gates shared by the extractors (questions, hypotheticals, who speaks)
    facts.py         rule-based fact statements ("I moved to X", "my X is Y", ...) from user turns
    facts_llm.py     the same records from a chat model, per session, JSON-validated
    timeline.py      validity intervals, facts at a date, contradictions (derived from the stored statements)
    instructions.py  standing instructions recognised in user turns, and their kind
    select.py        which instructions apply to a request
    evaluate.py      precision/recall of instruction selection on the shipped labelled set
"""

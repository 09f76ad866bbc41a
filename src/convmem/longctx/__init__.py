"""Long-context toolkit: synthetic needle tasks exact in length, their scorers, KV-cache policies and runners.

    tasks/      task families (NIAH, NeedleBench, Needle Threading, Ada-LEval, variable tracking), by name
    scoring.py  the scorers the anchors use (string_match_all/part, boxed exact match, exact order)
    kv/         KV-cache policies for transformers causal LMs (full, StreamingLLM, LM-Infinite, H2O, SirLLM)
    runners.py  run instances through an OpenAI-compatible endpoint or a local model + policy; one report format
    cli.py      `convmem bench longctx`

Only `tokenizers` is needed to generate tasks and score them; torch/transformers are imported lazily by `kv/`
and the local runner.
"""

from convmem.longctx.scoring import SCORERS, score
from convmem.longctx.tasks import TASKS, TaskInstance, get_task

__all__ = ["SCORERS", "TASKS", "TaskInstance", "get_task", "score"]

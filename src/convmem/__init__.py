"""convmem: long-term memory for LLM conversations.

    from convmem import Memory
    mem = Memory("memory.db")
    mem.import_file("chat.json", format="convmem")
    print(mem.context("what did I say about the wedding?", user="ana", budget_tokens=1000).text)
"""

from convmem.api import ImportReport, Memory
from convmem.errors import ConvmemError, FormatError, InputError, MissingDependency, NotFound
from convmem.models import Context, Hit, Session, Turn

__version__ = "0.1.0"
__all__ = ["Memory", "ImportReport", "Session", "Turn", "Hit", "Context", "ConvmemError", "InputError",
           "FormatError", "NotFound", "MissingDependency"]

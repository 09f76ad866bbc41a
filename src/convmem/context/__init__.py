"""Context assembly: the retrieved turns as one dated, cited block under a hard token budget."""

from convmem.context.assemble import assemble

__all__ = ["assemble"]

"""Retrieval: score one user's turns for a query (lexical + dense, fused), filter, rank, group."""

from convmem.retrieve.config import RETRIEVERS, RetrievalConfig, get_retriever

__all__ = ["RETRIEVERS", "RetrievalConfig", "get_retriever"]

"""The query embedder: loaded once per gateway process, on first use, off the event loop."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from codebase_indexer.embedding import Embedder, create_embedder

from .settings import DEFAULT_QUERY_THREADS


def query_embedder(threads: int = DEFAULT_QUERY_THREADS) -> Callable[[], Embedder]:
    """The gateway embeds only queries: on its --query-threads threads, through the traced model."""
    return functools.partial(create_embedder, query_threads=threads)


class LazyEmbedder:
    def __init__(self, factory: Callable[[], Embedder] | None = None) -> None:
        self._factory = factory or query_embedder()
        self._embedder: Embedder | None = None
        self._lock = asyncio.Lock()

    @property
    def loaded(self) -> Embedder | None:
        return self._embedder

    async def get(self) -> Embedder:
        if self._embedder is None:
            async with self._lock:
                if self._embedder is None:
                    self._embedder = await asyncio.to_thread(self._factory)
        return self._embedder

"""The query embedder: loaded once per gateway process, on first use, off the event loop."""
from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable

from codebase_indexer.embedding import Embedder, create_embedder

from .settings import DEFAULT_QUERY_THREADS

# The gateway embeds only queries: on its --query-threads threads, through the traced model.
QUERY_EMBEDDER = functools.partial(create_embedder, query_threads=DEFAULT_QUERY_THREADS)


class LazyEmbedder:
    def __init__(self, factory: Callable[[], Embedder] = QUERY_EMBEDDER) -> None:
        self._factory = factory
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

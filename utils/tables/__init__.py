"""Embedding tables: frame embeddings of many tracks, as one `.npz` file or a folder of Parquet shards.

`core` holds the table type, `load` the readers, `parquet` the shard format. Import from here;
the submodules import each other directly, never this facade, so there is no cycle.
"""

from utils.constants import SHARED_DATA
from utils.tables.core import (
    MUSICNN_FRAME_S,
    MUSICNN_HOP_S,
    PUBLISHED_MUSICNN_META,
    PUBLISHED_POOL_META,
    EmbeddingTable,
    TableError,
    TrackFrames,
)
from utils.tables.load import load_table, load_tables, read_id_list, require_genres

__all__ = [
    "MUSICNN_FRAME_S", "MUSICNN_HOP_S", "PUBLISHED_MUSICNN_META", "PUBLISHED_POOL_META", "SHARED_DATA",
    "EmbeddingTable", "TableError", "TrackFrames", "load_table", "load_tables", "read_id_list",
    "require_genres",
]

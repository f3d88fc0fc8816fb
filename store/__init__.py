"""DuckDB store: schema, transactional writes and read-only queries. Knows SQL, not models."""

from .connection import StoreError, StoreNotFoundError, connect
from .records import AttentionChangeRecord, ImageRecord, MapRecord, PredictionRecord, QuestionRecord, RunRecord
from .schema import SCHEMA_VERSION, ensure_schema
from .writer import RunConfigMismatch, StoreWriter

__all__ = [
    "SCHEMA_VERSION", "AttentionChangeRecord", "ImageRecord", "MapRecord", "PredictionRecord", "QuestionRecord", "RunConfigMismatch", "RunRecord",
    "StoreError", "StoreNotFoundError", "StoreWriter", "connect", "ensure_schema",
]

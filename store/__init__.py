"""DuckDB store: schema, transactional writes and read-only queries. Knows SQL, not models."""

from store.connection import StoreError, StoreNotFoundError, check_writable, connect, transaction
from store.records import (AttentionChangeRecord, HeadMapRecord, ImageRecord, MapRecord, PredictionRecord,
                           QuestionRecord, RunRecord, image_key)
from store.schema import SCHEMA_VERSION, SchemaError, ensure_schema
from store.writer import RecordError, RunConfigMismatch, RunInUseError, StoreWriter

__all__ = [
    "SCHEMA_VERSION", "AttentionChangeRecord", "HeadMapRecord", "ImageRecord", "MapRecord", "PredictionRecord",
    "QuestionRecord",
    "RecordError", "RunConfigMismatch", "RunInUseError", "RunRecord", "SchemaError", "StoreError",
    "StoreNotFoundError", "StoreWriter", "check_writable", "connect", "ensure_schema", "image_key", "transaction",
]

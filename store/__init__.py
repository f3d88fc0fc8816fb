"""DuckDB store: schema, transactional writes and read-only queries. Knows SQL, not models."""

from .connection import StoreError, StoreNotFoundError, check_writable, connect
from .records import (AttentionChangeRecord, ImageRecord, MapRecord, PredictionRecord, QuestionRecord, RunRecord,
                      image_key)
from .schema import SCHEMA_VERSION, SchemaError, ensure_schema
from .writer import RecordError, RunConfigMismatch, RunInUseError, StoreWriter

__all__ = [
    "SCHEMA_VERSION", "AttentionChangeRecord", "ImageRecord", "MapRecord", "PredictionRecord", "QuestionRecord",
    "RecordError", "RunConfigMismatch", "RunInUseError", "RunRecord", "SchemaError", "StoreError",
    "StoreNotFoundError", "StoreWriter", "check_writable", "connect", "ensure_schema", "image_key",
]

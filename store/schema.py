"""The DuckDB schema, versioned: the store creates and upgrades its own tables.

Each entry of MIGRATIONS moves the schema one version up. `ensure_schema` applies the
missing ones inside a transaction, so a file is always at a version the code knows.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from store.connection import StoreError, transaction

_V1 = """
CREATE TABLE runs (
    run_id              VARCHAR PRIMARY KEY,      -- the user's --run name
    study               VARCHAR NOT NULL,         -- 'baseline', later 'phrasing', 'attention'
    dataset             VARCHAR NOT NULL,
    manifest_path       VARCHAR,
    model_id            VARCHAR NOT NULL,         -- as given: hub id or folder
    model_revision      VARCHAR,                  -- hub commit, when loaded from the hub cache
    weights_fingerprint VARCHAR,                  -- sha256 over the weight files (see compute.model.provenance)
    device              VARCHAR,
    dtype               VARCHAR,
    seed                INTEGER,
    instruction         VARCHAR,
    system_prompt       VARCHAR,
    config              JSON NOT NULL,
    package_versions    JSON NOT NULL,
    started_at          TIMESTAMP NOT NULL,
    finished_at         TIMESTAMP,
    status              VARCHAR NOT NULL,         -- running | completed | interrupted | failed
    n_items             INTEGER
);

CREATE TABLE images (
    dataset   VARCHAR NOT NULL,
    image_id  VARCHAR NOT NULL,
    path      VARCHAR NOT NULL,
    sha256    VARCHAR,
    width     INTEGER,
    height    INTEGER,
    format    VARCHAR,                            -- png | jpeg | dicom
    PRIMARY KEY (dataset, image_id)
);

CREATE TABLE questions (
    item_id       VARCHAR PRIMARY KEY,            -- compute.data.manifest item id
    dataset       VARCHAR NOT NULL,
    image_id      VARCHAR,
    question      VARCHAR,
    ground_truth  VARCHAR,                        -- yes | no; NULL for an invalid row
    condition     VARCHAR,
    group_id      VARCHAR,
    variant_index INTEGER,
    strategy      VARCHAR,
    location      VARCHAR
);

CREATE TABLE predictions (
    run_id         VARCHAR NOT NULL,
    item_id        VARCHAR NOT NULL,
    row_number     INTEGER,                       -- the item's row in this run's manifest
    status         VARCHAR NOT NULL,              -- ok | failed
    error          VARCHAR,                       -- why it failed
    generated_text VARCHAR,
    answer         VARCHAR,                       -- yes | no | uncertain
    p_yes          DOUBLE,                        -- yes mass / (yes + no mass) at the answer position
    yes_no_mass    DOUBLE,                        -- yes + no mass: low when the reply is not yes/no
    correct        BOOLEAN,
    latency_s      DOUBLE,
    created_at     TIMESTAMP NOT NULL,
    PRIMARY KEY (run_id, item_id)
);

CREATE VIEW prediction_details AS
SELECT p.*, q.dataset, q.image_id, q.question, q.ground_truth, q.condition,
       q.group_id, q.variant_index, q.strategy, q.location
FROM predictions p LEFT JOIN questions q USING (item_id);
"""

_V2 = """
CREATE TABLE attention_maps (
    run_id              VARCHAR NOT NULL,
    item_id             VARCHAR NOT NULL,
    method              VARCHAR NOT NULL,         -- the method that made the map: attention | token | gradcam | activation
    layer               INTEGER NOT NULL,         -- decoder layer (attention, token) or vision encoder layer; -1: mean over `layers`
    requested_method    VARCHAR NOT NULL,
    fallback_reason     VARCHAR,                  -- why earlier methods of the chain failed
    layers              INTEGER[] NOT NULL,
    heads               VARCHAR,                  -- mean | max (attention); n/a otherwise
    query               VARCHAR,                  -- answer | question | generated | term
    query_positions     INTEGER[],
    term                VARCHAR,
    strip_border        INTEGER,
    attn_implementation VARCHAR,
    model_id            VARCHAR,
    image_height        INTEGER,                  -- model input size
    image_width         INTEGER,
    grid_rows           INTEGER NOT NULL,
    grid_cols           INTEGER NOT NULL,
    grid                FLOAT[] NOT NULL,         -- row-major, sums to 1; row 0 is the top of the image
    inside_body_ratio   DOUBLE,                   -- compute.metrics.attention_metrics, body mask from the image
    border_fraction     DOUBLE,
    attention_entropy   DOUBLE,
    normalized_entropy  DOUBLE,
    focus_score         DOUBLE,
    peak_to_average     DOUBLE,
    sparsity            DOUBLE,
    right_lung_fraction DOUBLE,                   -- patient's right: the image's left
    left_lung_fraction  DOUBLE,
    apical_fraction     DOUBLE,
    middle_fraction     DOUBLE,
    basal_fraction      DOUBLE,
    deletion_delta      DOUBLE,                   -- |change in log(P(yes)/P(no))| when the top cells are blurred (opt-in)
    random_delta        DOUBLE,                   -- the same for random cells of equal area
    faithfulness_ratio  DOUBLE,                   -- deletion_delta / random_delta
    PRIMARY KEY (run_id, item_id, method, layer)
);
"""

_V3 = """
ALTER TABLE runs ADD COLUMN items_per_second DOUBLE;       -- answered items per second of the last invocation
ALTER TABLE runs ADD COLUMN peak_gpu_memory_gb DOUBLE;     -- torch's peak allocated GPU memory; NULL on CPU
ALTER TABLE runs ADD COLUMN image_root VARCHAR;            -- absolute folder the run read its images from
ALTER TABLE runs ADD COLUMN host VARCHAR;                  -- where the run last started, and its process id,
ALTER TABLE runs ADD COLUMN pid INTEGER;                   -- so that a check can tell a dead 'running' run
ALTER TABLE questions ADD COLUMN baseline_question VARCHAR;   -- the group's baseline wording (phrasing studies)
ALTER TABLE questions ADD COLUMN strategy_category VARCHAR;   -- baseline | synonym | voice | register | clause_reordering | phrasing | combined | negation_probe | other
ALTER TABLE questions ADD COLUMN answer_inverted BOOLEAN;     -- a negation probe: the expected answer is the opposite
ALTER TABLE questions ADD COLUMN transformation VARCHAR;      -- what a generated variant changed, e.g. "edema -> oedema"
DROP VIEW prediction_details;
CREATE VIEW prediction_details AS
SELECT p.*, q.dataset, q.image_id, q.question, q.ground_truth, q.condition,
       q.group_id, q.variant_index, q.strategy, q.location,
       q.baseline_question, q.strategy_category, q.answer_inverted, q.transformation
FROM predictions p LEFT JOIN questions q USING (item_id);

CREATE TABLE attention_changes (
    run_id              VARCHAR NOT NULL,
    item_id             VARCHAR NOT NULL,         -- the variant
    baseline_item_id    VARCHAR NOT NULL,         -- its group's baseline (variant 0)
    method              VARCHAR NOT NULL,         -- the maps compared (attention)
    layer               INTEGER NOT NULL,         -- -1: mean over the run's layers
    answer_change       VARCHAR NOT NULL,         -- yes→no | no→yes | unchanged | other (an uncertain answer)
    correctness_change  VARCHAR NOT NULL,         -- correct→wrong | wrong→correct | unchanged
    js_divergence       DOUBLE,                   -- base 2, in [0, 1]
    pearson             DOUBLE,
    l2                  DOUBLE,
    cosine              DOUBLE,
    grid_rows           INTEGER NOT NULL,
    grid_cols           INTEGER NOT NULL,
    difference          FLOAT[] NOT NULL,         -- variant map minus baseline map, row-major
    PRIMARY KEY (run_id, item_id, method)
);
"""

# Images are identified by content and place: one record per (sha256 of the bytes, resolved
# path), and each prediction names the record it was computed on. Before this, images were
# keyed by (dataset, image_id), so two runs whose manifests sat in folders of the same name
# overwrote each other's records; the old table stays for the runs written then.
_V4 = """
CREATE TABLE image_files (
    image_key  VARCHAR PRIMARY KEY,               -- store.records.image_key(sha256, path)
    sha256     VARCHAR NOT NULL,                  -- of exactly the bytes the model was shown
    path       VARCHAR NOT NULL,                  -- absolute, resolved
    width      INTEGER,
    height     INTEGER,
    format     VARCHAR                            -- png | jpeg | dicom
);
ALTER TABLE predictions ADD COLUMN image_key VARCHAR;     -- the image_files row it was computed on (NULL: no image read)
ALTER TABLE runs ADD COLUMN error VARCHAR;                -- why a run failed
ALTER TABLE runs ADD COLUMN heartbeat_at TIMESTAMP;       -- the owning process's last write, in UTC
ALTER TABLE attention_maps ADD COLUMN metrics_note VARCHAR;  -- why some metrics are NULL (e.g. no body mask)
"""  # prediction_details selects p.*, so it shows image_key without being recreated

# Rows from real datasets: where each came from and how it slices (view, split, the dataset's
# own columns), and where its finding is (radiologists' boxes, a lesion mask), which the maps'
# lesion metrics (pointing game, in-lesion attention ratio) are computed against.
_V5 = """
ALTER TABLE questions ADD COLUMN view VARCHAR;             -- e.g. PA | AP | lateral
ALTER TABLE questions ADD COLUMN split VARCHAR;            -- the dataset's split, e.g. train | validate | test
ALTER TABLE questions ADD COLUMN source VARCHAR;           -- file and row or record, e.g. 'train.csv row 17'
ALTER TABLE questions ADD COLUMN attributes JSON;          -- the manifest row's other columns, for slicing
ALTER TABLE questions ADD COLUMN boxes JSON;               -- [{x_min, y_min, x_max, y_max, label?, rad_id?}], original pixels
ALTER TABLE questions ADD COLUMN mask VARCHAR;             -- the lesion mask: a resolved mask-image path or a run-length string
ALTER TABLE attention_maps ADD COLUMN lesion_hit BOOLEAN;           -- pointing game: the map's peak cell overlaps the lesion
ALTER TABLE attention_maps ADD COLUMN lesion_attention_ratio DOUBLE; -- mass on the lesion / the lesion's share of the body
DROP VIEW prediction_details;
CREATE VIEW prediction_details AS
SELECT p.*, q.dataset, q.image_id, q.question, q.ground_truth, q.condition,
       q.group_id, q.variant_index, q.strategy, q.location,
       q.baseline_question, q.strategy_category, q.answer_inverted, q.transformation,
       q.view, q.split, q.source, q.attributes
FROM predictions p LEFT JOIN questions q USING (item_id);
"""

_V6 = """
ALTER TABLE attention_maps ADD COLUMN sink_mass DOUBLE;   -- the raw map's mass on attention-sink tokens (when detected)
ALTER TABLE attention_maps ADD COLUMN details JSON;        -- the method's parameters and figures: image reliance,
                                                          -- the generic prompt, sink cells, the lens term, ...
CREATE TABLE head_maps (                                  -- --heads all: each head's map of an attention map
    run_id    VARCHAR NOT NULL,
    item_id   VARCHAR NOT NULL,
    method    VARCHAR NOT NULL,
    layer     INTEGER NOT NULL,                           -- a decoder layer (never the mean)
    head      INTEGER NOT NULL,
    grid_rows INTEGER NOT NULL,
    grid_cols INTEGER NOT NULL,
    grid      FLOAT[] NOT NULL,                           -- row-major, sums to 1
    PRIMARY KEY (run_id, item_id, method, layer, head)
);
"""

# Pre-aggregated tables (store.aggregates): what the pages read a whole run of, joined and ordered once
# when a run ends rather than on every page view. A reader uses a run's rows only while run_aggregates
# holds the stamp of the store's current state for it; otherwise it reads the tables above. And indexes
# for the pages that show one item.
_V7 = """
CREATE TABLE run_items (                                  -- prediction_details of each run, in manifest order
    run_id            VARCHAR NOT NULL,
    position          INTEGER NOT NULL,                   -- 0, 1, ... by row_number (NULLs last), then item_id
    item_id           VARCHAR NOT NULL,
    row_number        INTEGER,
    status            VARCHAR NOT NULL,
    error             VARCHAR,
    generated_text    VARCHAR,
    answer            VARCHAR,
    p_yes             DOUBLE,
    yes_no_mass       DOUBLE,
    correct           BOOLEAN,
    latency_s         DOUBLE,
    image_key         VARCHAR,
    image_sha256      VARCHAR,                            -- of image_files' row for image_key
    image_id          VARCHAR,
    question          VARCHAR,
    ground_truth      VARCHAR,
    condition         VARCHAR,
    group_id          VARCHAR,
    variant_index     INTEGER,
    strategy          VARCHAR,
    strategy_category VARCHAR,
    baseline_question VARCHAR,
    has_maps          BOOLEAN NOT NULL                    -- the run stored a map of the item
);
CREATE TABLE run_changes (                                -- attention_changes (without the difference maps)
    run_id             VARCHAR NOT NULL,                  -- with their variants' details, most changed first
    position           INTEGER NOT NULL,                  -- 0, 1, ... by js_divergence descending (NULLs last)
    item_id            VARCHAR NOT NULL,
    baseline_item_id   VARCHAR NOT NULL,
    method             VARCHAR NOT NULL,
    layer              INTEGER NOT NULL,
    answer_change      VARCHAR NOT NULL,
    correctness_change VARCHAR NOT NULL,
    js_divergence      DOUBLE,
    pearson            DOUBLE,
    l2                 DOUBLE,
    cosine             DOUBLE,
    grid_rows          INTEGER NOT NULL,
    grid_cols          INTEGER NOT NULL,
    group_id           VARCHAR,
    image_id           VARCHAR,
    condition          VARCHAR,
    question           VARCHAR,
    baseline_question  VARCHAR,
    strategy           VARCHAR,
    strategy_category  VARCHAR,
    answer             VARCHAR,
    correct            BOOLEAN,
    ground_truth       VARCHAR
);
CREATE TABLE run_method_figures (                         -- store.queries.method_figures of each run
    run_id         VARCHAR NOT NULL,
    method         VARCHAR NOT NULL,
    condition      VARCHAR,
    n              BIGINT NOT NULL,
    n_lesion       BIGINT NOT NULL,
    hit_rate       DOUBLE,
    lesion_ratio   DOUBLE,
    deletion_ratio DOUBLE,
    sink_mass      DOUBLE
);
CREATE TABLE run_aggregates (
    run_id       VARCHAR PRIMARY KEY,
    stamp        VARCHAR NOT NULL,                        -- store.aggregates.stamp when the rows were computed
    refreshed_at TIMESTAMP NOT NULL
);
-- One item's rows, found without scanning the run's: DuckDB looks up a one-column index, not a leading
-- part of a primary key (nor with an equality on layer too, so the queries match the layer afterwards).
CREATE INDEX predictions_item ON predictions (item_id);
CREATE INDEX attention_maps_item ON attention_maps (item_id);
CREATE INDEX head_maps_item ON head_maps (item_id);
CREATE INDEX attention_changes_item ON attention_changes (item_id);
"""

MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)


class SchemaError(StoreError):
    """The database is not a store this code can use: another application's, or a newer schema."""


def current_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
    ).fetchall()[0][0]
    if not exists:
        return 0
    return con.execute("SELECT max(version) FROM schema_version").fetchall()[0][0] or 0


def usable_version(con: duckdb.DuckDBPyConnection, db_path: str | Path = "the database") -> int:
    """The store's schema version; 0 for an empty database. SchemaError for a database that
    holds another application's tables, or a schema newer than this code."""
    version = current_version(con)
    if version == 0:
        tables = [r[0] for r in con.execute(
            "SELECT table_name FROM information_schema.tables ORDER BY table_name LIMIT 6").fetchall()]
        if tables:
            raise SchemaError(f"{db_path}: a DuckDB database of another application (tables: {', '.join(tables[:5])}"
                              f"{', ...' if len(tables) > 5 else ''}), not a MedGemma Visualizer store; "
                              "use a new file")
    if version > SCHEMA_VERSION:
        raise SchemaError(f"{db_path}: its schema is version {version}, newer than this code's {SCHEMA_VERSION}; "
                          "upgrade MedGemma Visualizer to use it")
    return version


def ensure_schema(con: duckdb.DuckDBPyConnection, db_path: str | Path = "the database") -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it was at before."""
    before = usable_version(con, db_path)
    if before == SCHEMA_VERSION:
        return before
    with transaction(con):
        con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP)")
        for version in range(before + 1, SCHEMA_VERSION + 1):
            con.execute(MIGRATIONS[version - 1])
            con.execute("INSERT INTO schema_version VALUES (?, current_timestamp)", [version])
    return before

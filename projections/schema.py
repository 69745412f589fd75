"""The job database read model: cc-backend's tables and columns (schema version 11), in SQLite.

The DDL is cc-backend's own, so its tools and queries work on our file unchanged; the SQLAlchemy
tables below describe the same columns for building queries.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

#: cc-backend's migration version this layout corresponds to.
SCHEMA_VERSION = 11

# One index beyond cc-backend's: jobs_jobstate_starttime. `GET /api/jobs/?state=running` without a
# cluster lists newest start first; without it SQLite sorts every running job (760 ms with 100,000
# running of 1,000,000 jobs, 0.2 ms with it).
DDL = """
CREATE TABLE IF NOT EXISTS schema_migrations (version uint64, dirty bool);
CREATE UNIQUE INDEX IF NOT EXISTS version_unique ON schema_migrations (version);
CREATE TABLE IF NOT EXISTS job (
    id INTEGER PRIMARY KEY,
    job_id BIGINT NOT NULL,
    cluster TEXT NOT NULL,
    subcluster TEXT NOT NULL,
    submit_time BIGINT NOT NULL DEFAULT 0,
    start_time BIGINT NOT NULL DEFAULT 0,
    hpc_user TEXT NOT NULL,
    project TEXT NOT NULL,
    cluster_partition TEXT,
    array_job_id BIGINT,
    duration INT NOT NULL,
    walltime INT NOT NULL,
    job_state TEXT NOT NULL
    CHECK (job_state IN (
        'boot_fail', 'cancelled', 'completed', 'deadline',
        'failed', 'node_fail', 'out-of-memory', 'pending',
        'preempted', 'running', 'suspended', 'timeout'
    )),
    meta_data TEXT,
    resources TEXT NOT NULL,
    num_nodes INT NOT NULL,
    num_hwthreads INT,
    num_acc INT,
    smt INT NOT NULL DEFAULT 1,
    shared TEXT NOT NULL
    CHECK (shared IN ('none', 'single_user', 'multi_user')),
    monitoring_status TINYINT NOT NULL DEFAULT 1
    CHECK (monitoring_status IN (0, 1, 2, 3)),
    energy REAL NOT NULL DEFAULT 0.0,
    energy_footprint TEXT DEFAULT NULL,
    footprint TEXT DEFAULT NULL,
    UNIQUE (job_id, cluster, start_time)
);
CREATE TABLE IF NOT EXISTS tag (
    id INTEGER PRIMARY KEY,
    tag_type VARCHAR(255) NOT NULL,
    tag_name VARCHAR(255) NOT NULL,
    insert_ts TEXT DEFAULT CURRENT_TIMESTAMP,
    tag_scope TEXT NOT NULL DEFAULT 'global',
    UNIQUE (tag_type, tag_name, tag_scope)
);
CREATE TABLE IF NOT EXISTS jobtag (
    job_id INTEGER,
    tag_id INTEGER,
    insert_ts TEXT DEFAULT CURRENT_TIMESTAMP,
    PRIMARY KEY (job_id, tag_id),
    FOREIGN KEY (job_id) REFERENCES job (id) ON DELETE CASCADE,
    FOREIGN KEY (tag_id) REFERENCES tag (id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS hpc_user (
    username varchar(255) PRIMARY KEY NOT NULL,
    password varchar(255) DEFAULT NULL,
    ldap tinyint NOT NULL DEFAULT 0,
    name varchar(255) DEFAULT NULL,
    roles varchar(255) NOT NULL DEFAULT '[]',
    email varchar(255) DEFAULT NULL,
    projects varchar(255) NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS configuration (
    username varchar(255),
    confkey varchar(255),
    value text,
    PRIMARY KEY (username, confkey),
    FOREIGN KEY (username) REFERENCES hpc_user (username) ON DELETE CASCADE ON UPDATE NO ACTION
);
CREATE TABLE IF NOT EXISTS node (
    id INTEGER PRIMARY KEY,
    hostname VARCHAR(255) NOT NULL,
    cluster VARCHAR(255) NOT NULL,
    subcluster VARCHAR(255) NOT NULL,
    meta_data TEXT,
    UNIQUE (hostname, cluster)
);
CREATE TABLE IF NOT EXISTS node_state (
    id INTEGER PRIMARY KEY,
    time_stamp INTEGER NOT NULL,
    jobs_running INTEGER DEFAULT 0 NOT NULL,
    cpus_allocated INTEGER DEFAULT 0 NOT NULL,
    memory_allocated INTEGER DEFAULT 0 NOT NULL,
    gpus_allocated INTEGER DEFAULT 0 NOT NULL,
    node_state VARCHAR(255) NOT NULL
    CHECK (node_state IN ('allocated', 'reserved', 'idle', 'mixed', 'down', 'unknown')),
    health_state VARCHAR(255) NOT NULL
    CHECK (health_state IN ('full', 'partial', 'failed')),
    health_metrics TEXT,
    node_id INTEGER,
    FOREIGN KEY (node_id) REFERENCES node (id)
);
CREATE TABLE IF NOT EXISTS ccstream_checkpoint (
    name TEXT PRIMARY KEY,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS ccstream_parked_stop (
    event_id TEXT PRIMARY KEY,
    cluster TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    start_time BIGINT,
    job_state TEXT NOT NULL,
    stop_time BIGINT NOT NULL,
    received_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS ccstream_job_statistics (
    cluster TEXT NOT NULL,
    job_id BIGINT NOT NULL,
    start_time BIGINT NOT NULL,
    statistics TEXT NOT NULL,
    PRIMARY KEY (cluster, job_id, start_time)
);
CREATE INDEX IF NOT EXISTS jobs_starttime ON job (start_time);
CREATE INDEX IF NOT EXISTS jobs_cluster_starttime_duration ON job (cluster, start_time, duration);
CREATE INDEX IF NOT EXISTS jobs_cluster_duration_starttime ON job (cluster, duration, start_time);
CREATE INDEX IF NOT EXISTS jobs_cluster_jobstate_duration_starttime
    ON job (cluster, job_state, duration, start_time);
CREATE INDEX IF NOT EXISTS jobs_cluster_jobstate_starttime_duration
    ON job (cluster, job_state, start_time, duration);
CREATE INDEX IF NOT EXISTS jobs_cluster_user ON job (cluster, hpc_user);
CREATE INDEX IF NOT EXISTS jobs_cluster_project ON job (cluster, project);
CREATE INDEX IF NOT EXISTS jobs_cluster_subcluster ON job (cluster, subcluster);
CREATE INDEX IF NOT EXISTS jobs_cluster_numnodes ON job (cluster, num_nodes);
CREATE INDEX IF NOT EXISTS jobs_user_starttime_duration ON job (hpc_user, start_time, duration);
CREATE INDEX IF NOT EXISTS jobs_project_starttime_duration ON job (project, start_time, duration);
CREATE INDEX IF NOT EXISTS jobs_jobstate_project ON job (job_state, project);
CREATE INDEX IF NOT EXISTS jobs_jobstate_user ON job (job_state, hpc_user);
CREATE INDEX IF NOT EXISTS jobs_jobstate_duration_starttime ON job (job_state, duration, start_time);
CREATE INDEX IF NOT EXISTS jobs_jobstate_starttime ON job (job_state, start_time);
CREATE INDEX IF NOT EXISTS jobs_arrayjobid ON job (array_job_id);
CREATE INDEX IF NOT EXISTS jobs_cluster_numhwthreads ON job (cluster, num_hwthreads);
CREATE INDEX IF NOT EXISTS jobs_cluster_numacc ON job (cluster, num_acc);
CREATE INDEX IF NOT EXISTS jobs_cluster_energy ON job (cluster, energy);
CREATE INDEX IF NOT EXISTS jobs_cluster_partition_starttime ON job (cluster, cluster_partition, start_time);
CREATE INDEX IF NOT EXISTS jobs_cluster_partition_jobstate ON job (cluster, cluster_partition, job_state);
CREATE INDEX IF NOT EXISTS tags_jobid ON jobtag (job_id);
CREATE INDEX IF NOT EXISTS tags_tagid ON jobtag (tag_id);
CREATE INDEX IF NOT EXISTS nodes_cluster ON node (cluster);
CREATE INDEX IF NOT EXISTS nodes_cluster_subcluster ON node (cluster, subcluster);
CREATE INDEX IF NOT EXISTS nodestates_timestamp ON node_state (time_stamp);
CREATE INDEX IF NOT EXISTS nodestates_state_timestamp ON node_state (node_state, time_stamp);
CREATE INDEX IF NOT EXISTS nodestates_health_timestamp ON node_state (health_state, time_stamp);
CREATE INDEX IF NOT EXISTS nodestates_nodeid_state ON node_state (node_id, node_state);
CREATE INDEX IF NOT EXISTS nodestates_nodeid_health ON node_state (node_id, health_state);
CREATE INDEX IF NOT EXISTS nodestates_nodeid_timestamp ON node_state (node_id, time_stamp DESC);
CREATE INDEX IF NOT EXISTS parked_stop_job ON ccstream_parked_stop (cluster, job_id);
CREATE INDEX IF NOT EXISTS ccstream_jobs_monitoring ON job (monitoring_status, cluster);
"""

metadata = MetaData()

job = Table(
    "job", metadata,
    Column("id", Integer, primary_key=True),
    Column("job_id", BigInteger, nullable=False),
    Column("cluster", Text, nullable=False),
    Column("subcluster", Text, nullable=False),
    Column("submit_time", BigInteger, nullable=False),
    Column("start_time", BigInteger, nullable=False),
    Column("hpc_user", Text, nullable=False),
    Column("project", Text, nullable=False),
    Column("cluster_partition", Text),
    Column("array_job_id", BigInteger),
    Column("duration", Integer, nullable=False),
    Column("walltime", Integer, nullable=False),
    Column("job_state", Text, nullable=False),
    Column("meta_data", Text),
    Column("resources", Text, nullable=False),
    Column("num_nodes", Integer, nullable=False),
    Column("num_hwthreads", Integer),
    Column("num_acc", Integer),
    Column("smt", Integer, nullable=False),
    Column("shared", Text, nullable=False),
    Column("monitoring_status", Integer, nullable=False),
    Column("energy", Float, nullable=False),
    Column("energy_footprint", Text),
    Column("footprint", Text),
)

tag = Table(
    "tag", metadata,
    Column("id", Integer, primary_key=True),
    Column("tag_type", String(255), nullable=False),
    Column("tag_name", String(255), nullable=False),
    Column("insert_ts", Text),
    Column("tag_scope", Text, nullable=False),
)

jobtag = Table(
    "jobtag", metadata,
    Column("job_id", Integer, primary_key=True),
    Column("tag_id", Integer, primary_key=True),
    Column("insert_ts", Text),
)

hpc_user = Table(
    "hpc_user", metadata,
    Column("username", String(255), primary_key=True),
    Column("password", String(255)),
    Column("ldap", Integer, nullable=False),
    Column("name", String(255)),
    Column("roles", String(255), nullable=False),
    Column("email", String(255)),
    Column("projects", String(255), nullable=False),
)

configuration = Table(
    "configuration", metadata,
    Column("username", String(255), primary_key=True),
    Column("confkey", String(255), primary_key=True),
    Column("value", Text),
)

node = Table(
    "node", metadata,
    Column("id", Integer, primary_key=True),
    Column("hostname", String(255), nullable=False),
    Column("cluster", String(255), nullable=False),
    Column("subcluster", String(255), nullable=False),
    Column("meta_data", Text),
)

node_state = Table(
    "node_state", metadata,
    Column("id", Integer, primary_key=True),
    Column("time_stamp", Integer, nullable=False),
    Column("jobs_running", Integer, nullable=False),
    Column("cpus_allocated", Integer, nullable=False),
    Column("memory_allocated", Integer, nullable=False),
    Column("gpus_allocated", Integer, nullable=False),
    Column("node_state", String(255), nullable=False),
    Column("health_state", String(255), nullable=False),
    Column("health_metrics", Text),
    Column("node_id", Integer),
)

checkpoint = Table(
    "ccstream_checkpoint", metadata,
    Column("name", Text, primary_key=True),
    Column("position", Integer, nullable=False),
)

#: ccstream's own: the per-metric statistics of archived jobs (meta.json's `statistics`, from
#: `job.archived`), which the job endpoints answer without reading the archive; by the job's natural key,
#: so a bulk rebuild can write them before the job rows have their ids.
job_statistics = Table(
    "ccstream_job_statistics", metadata,
    Column("cluster", Text, primary_key=True),
    Column("job_id", BigInteger, primary_key=True),
    Column("start_time", BigInteger, primary_key=True),
    Column("statistics", Text, nullable=False),
)

parked_stop = Table(
    "ccstream_parked_stop", metadata,
    Column("event_id", Text, primary_key=True),
    Column("cluster", Text, nullable=False),
    Column("job_id", BigInteger, nullable=False),
    Column("start_time", BigInteger),
    Column("job_state", Text, nullable=False),
    Column("stop_time", BigInteger, nullable=False),
    Column("received_at", Float, nullable=False),
)

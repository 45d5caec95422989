#!/usr/bin/env python3
"""Writes docs/openapi.yaml: the paths quipu serves, copied verbatim from the
InfluxDB 3 Enterprise reference, with every component they reference.

Usage: scripts/openapi-subset.py docs/reference/influxdb3-enterprise-openapi.yaml > docs/openapi.yaml

Paths and methods served are listed in SERVED below; extensions (paths or
values the reference lacks) are added by EXTENSIONS and carry `x-quipu: true`.
"""
import copy
import sys

import yaml


class Wrapped(str):
    """A string written with a line break before each part after the first
    (PyYAML still wraps a part longer than the width, as it wraps any string).
    docs/openapi.yaml was edited by hand at these strings, and its lines break
    where that edit broke them, not where PyYAML would. The value is the parts
    joined by single spaces: what YAML folds each break to."""
    def __new__(cls, *parts):
        text = super().__new__(cls, " ".join(parts))
        text.parts = parts
        return text

SERVED = {
    "/api/v3/write_lp": ["post"],
    "/api/v2/write": ["post"],
    "/write": ["post"],
    "/health": ["get"],
    "/api/v1/health": ["get"],
    "/ping": ["get", "post"],
    "/metrics": ["get"],
    "/api/v3/export/databases": ["get"],
    "/api/v3/export/tables": ["get"],
    "/api/v3/export/windows": ["get"],
    "/api/v3/export/window_data": ["get"],
    "/api/v3/enterprise/backup": ["post", "get", "delete"],
    "/api/v3/enterprise/backup/{name}": ["get", "delete"],
    "/api/v3/enterprise/restore": ["post", "get"],
    "/api/v3/enterprise/restore/{id}": ["get", "delete"],
    "/api/v3/query_sql": ["get", "post"],
    "/query": ["get", "post"],
}

ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}}
PROBLEM = {
    "type": "object",
    "required": ["problem", "blake3", "backups"],
    "properties": {
        "problem": {"type": "string", "enum": ["missing", "wrong_size", "corrupt", "unreadable"]},
        "blake3": {"type": "string", "description": "The object's name: the blake3 of its content, hex."},
        "expected": {"type": "integer"}, "found": {"type": "integer"},
        "actual": {"type": "string", "description": "What the content hashes to (corrupt)."},
        "error": {"type": "string"},
        "backups": {"type": "array", "items": {"type": "string"}, "description": "Every backup that uses the object."},
    },
}
VERIFY_REPORT = {
    "type": "object",
    "required": ["backup_name", "status", "objects_checked", "bytes_checked", "problems"],
    "properties": {
        "backup_name": {"type": "string"},
        "status": {"type": "string", "enum": ["ok", "corrupt"]},
        "objects_checked": {"type": "integer", "minimum": 0},
        "bytes_checked": {"type": "integer", "minimum": 0},
        "problems": {"type": "array", "items": PROBLEM},
    },
}
EXTENSIONS = {
    "/api/v3/enterprise/backup/{name}/verify": {
        "post": {
            "operationId": "PostEnterpriseBackupVerify",
            "summary": "Verify a backup (quipu extension)",
            "description": "Re-hashes every object of a completed backup, in parallel, and names each missing or "
                           "corrupt object with every backup that uses it. Requires the admin token.",
            "x-quipu": True,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                            "description": "The backup name. URL-encoded names are decoded by the server."}],
            "responses": {
                "200": {"description": "Verified; `status` says whether every object is intact.",
                        "content": {"application/json": {"schema": VERIFY_REPORT}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"description": "No completed backup has that name.", "content": ERROR},
                "409": {"description": "The backup is in progress.", "content": ERROR},
                "503": {"description": "The server runs without a backup repository (--no-backup).",
                        "content": ERROR},
            },
            "tags": ["Backup and restore"],
        }
    }
}

# Pushes and pulls run as jobs (src/server/transfer.rs). The parts push, pull
# and the job routes share are written once and named in ANCHORS, so the
# document says once what they have in common.
TRANSFER = {
    "type": "object",
    "x-quipu": True,
    "required": ["id", "kind", "backup", "remote", "status", "created_at", "objects_total", "objects_done",
                 "bytes_total", "bytes_done"],
    "properties": {
        "id": {"type": "string"},
        "kind": {"type": "string", "enum": ["push", "pull"]},
        "backup": {"type": "string"},
        "remote": {"type": "string", "description": "The remote's URL, never with credentials."},
        "status": {"type": "string", "enum": ["in_progress", "completed", "failed", "cancelled"]},
        "created_at": {"type": "string"},
        "completed_at": {"type": "string"},
        "objects_total": {"type": "integer", "minimum": 0},
        "objects_done": {"type": "integer", "minimum": 0},
        "bytes_total": {"type": "integer", "minimum": 0},
        "bytes_done": {"type": "integer", "minimum": 0},
        "objects_moved": {"type": "integer", "minimum": 0},
        "bytes_moved": {"type": "integer", "minimum": 0},
        "error": {"type": "string"},
    },
}
# quipu's own schemas: the reference lacks them, so they are not looked up there.
QUIPU_SCHEMAS = {"Transfer": TRANSFER}
TRANSFER_ERROR = copy.deepcopy(ERROR)
TRANSFER_NAME = {"name": "name", "in": "path", "required": True, "schema": {"type": "string"},
                 "description": "The backup name."}
TRANSFER_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"},
               "description": "The job's id (a ULID)."}
# The server takes the credentials from the body (or its AWS environment) and
# refuses fields it does not know.
TRANSFER_BODY = {
    "required": True,
    "content": {"application/json": {"schema": {
        "type": "object",
        "additionalProperties": False,
        "required": ["remote"],
        "properties": {
            "remote": {"type": "string",
                       "description": "`s3://bucket/prefix`, `file:///abs/path` or an absolute folder path."},
            "endpoint": {"type": "string",
                         "description": "An S3-compatible server's endpoint (`http://127.0.0.1:9000`)."},
            "region": {"type": "string"},
            "access_key_id": {"type": "string"},
            "secret_access_key": {"type": "string"},
            "session_token": {"type": "string"},
            "accept_unconditional": {"type": "boolean",
                                     "description": "Trust a remote that ignores conditional creates."},
        },
    }}},
}
TRANSFER_STARTED = {
    "description": "The job started.",
    "content": {"application/json": {"schema": {
        "type": "object", "required": ["transfer_id", "status"],
        "properties": {"transfer_id": {"type": "string"}, "status": {"type": "string", "enum": ["in_progress"]}}}}},
}
TRANSFER_BAD = {"description": "The body is not JSON of this shape, the remote cannot be used, or the name is not a "
                               "backup name.",
                "content": TRANSFER_ERROR}
# MAX_RUNNING_TRANSFERS in src/remote/jobs.rs.
TRANSFER_BUSY = {"description": Wrapped("As many transfers run as the server allows (4), or (pull) a backup of "
                                        "that name runs or is being", "pulled."),
                 "content": TRANSFER_ERROR}
TRANSFER_UNAVAILABLE = {"description": "The server runs without a backup repository (--no-backup), or is shutting "
                                       "down.",
                        "content": TRANSFER_ERROR}
TRANSFER_EXTENSIONS = {
    "/api/v3/enterprise/backup/{name}/push": {
        "post": {
            "operationId": "PostEnterpriseBackupPush",
            "summary": "Push a backup to a remote repository (quipu extension)",
            "description": Wrapped("Starts a job that sends the objects of completed backup `name` the remote "
                                   "lacks, then its manifest",
                                   "with a conditional create. Credentials in the body go to the job only (never to "
                                   "a record or a log); absent ones",
                                   "come from the server's AWS environment. Requires the admin token."),
            "x-quipu": True,
            "parameters": [TRANSFER_NAME],
            "requestBody": TRANSFER_BODY,
            "responses": {
                "202": TRANSFER_STARTED,
                "400": TRANSFER_BAD,
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"description": "No completed backup has that name.", "content": TRANSFER_ERROR},
                "409": TRANSFER_BUSY,
                "503": TRANSFER_UNAVAILABLE,
            },
            "tags": ["Backup and restore"],
        }
    },
    "/api/v3/enterprise/backup/{name}/pull": {
        "post": {
            "operationId": "PostEnterpriseBackupPull",
            "summary": "Pull a backup from a remote repository (quipu extension)",
            "description": Wrapped("Starts a job that fetches remote backup `name` into the server's repository, "
                                   "each object hashed as",
                                   "it arrives, the manifest last. Requires the admin token."),
            "x-quipu": True,
            "parameters": [TRANSFER_NAME],
            "requestBody": TRANSFER_BODY,
            "responses": {
                "202": TRANSFER_STARTED,
                "400": TRANSFER_BAD,
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "409": TRANSFER_BUSY,
                "503": TRANSFER_UNAVAILABLE,
            },
            "tags": ["Backup and restore"],
        }
    },
    "/api/v3/enterprise/transfer": {
        "get": {
            "operationId": "GetEnterpriseTransfers",
            "summary": "List pushes and pulls (quipu extension)",
            "description": "Every push and pull job of this repository, newest first. Requires the admin token.",
            "x-quipu": True,
            "responses": {
                "200": {"description": "The jobs.", "content": {"application/json": {"schema": {
                    "type": "object", "required": ["transfers"],
                    "properties": {"transfers": {"type": "array",
                                                 "items": {"$ref": "#/components/schemas/Transfer"}}}}}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "503": TRANSFER_UNAVAILABLE,
            },
            "tags": ["Backup and restore"],
        }
    },
    "/api/v3/enterprise/transfer/{id}": {
        "get": {
            "operationId": "GetEnterpriseTransfer",
            "summary": "One push or pull (quipu extension)",
            "description": "The job with its progress. Requires the admin token.",
            "x-quipu": True,
            "parameters": [TRANSFER_ID],
            "responses": {
                "200": {"description": "The job.",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Transfer"}}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"description": "No job has that id.", "content": TRANSFER_ERROR},
                "503": TRANSFER_UNAVAILABLE,
            },
            "tags": ["Backup and restore"],
        },
        "delete": {
            "operationId": "DeleteEnterpriseTransfer",
            "summary": "Cancel a push or pull (quipu extension)",
            "description": Wrapped("Asks a running job to stop; it ends cancelled and leaves no manifest on the "
                                   "side it was writing to.",
                                   "Requires the admin token."),
            "x-quipu": True,
            "parameters": [TRANSFER_ID],
            "responses": {
                "204": {"description": "Asked to stop."},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"description": "No job has that id.", "content": TRANSFER_ERROR},
                "409": {"description": "The job has ended.", "content": TRANSFER_ERROR},
                "503": TRANSFER_UNAVAILABLE,
            },
            "tags": ["Backup and restore"],
        },
    },
}
# The YAML anchors of the shared parts (an anchor PyYAML would otherwise name idNNN).
ANCHORS = {
    "transferName": TRANSFER_NAME, "transferBody": TRANSFER_BODY, "transferStarted": TRANSFER_STARTED,
    "transferBad": TRANSFER_BAD, "transferError": TRANSFER_ERROR, "transferBusy": TRANSFER_BUSY,
    "transferUnavailable": TRANSFER_UNAVAILABLE, "transferId": TRANSFER_ID,
}

PROGRESS = {
    "type": "object",
    "required": ["phase", "files_done", "files_total", "bytes_done", "bytes_total"],
    "properties": {
        "phase": {"type": "string", "enum": ["starting", "copying", "committing", "done"]},
        "files_done": {"type": "integer"}, "files_total": {"type": "integer"},
        "bytes_done": {"type": "integer"}, "bytes_total": {"type": "integer"},
    },
}
BACKUP_EXTENSIONS = {
    "progress": {**PROGRESS, "description": "While the backup runs (x-quipu)."},
    "error": {"type": "string", "description": "Why a backup failed or was cancelled (x-quipu)."},
    "unique_bytes": {"type": "integer", "description": "Bytes only this backup references: what deleting it "
                                                         "frees (x-quipu)."},
    "parent": {"type": "string", "description": "The backup an incremental backup follows (x-quipu)."},
    "mode": {"type": "string", "enum": ["link", "copy"], "description": "How objects were placed (x-quipu)."},
    "added_objects": {"type": "integer", "description": "Objects this backup added to the repository (x-quipu)."},
    "added_bytes": {"type": "integer", "description": "Bytes this backup added to the repository (x-quipu)."},
    "last_attempt": {"type": "object", "description": "A later attempt under this name that did not complete "
                                                      "(force replacement that failed or was cancelled; x-quipu).",
                     "properties": {"status": {"$ref": "#/components/schemas/BackupStatus"},
                                    "created_at": {"type": "string", "format": "date-time"},
                                    "error": {"type": "string", "nullable": True}}},
}


def describe_backup(out):
    """quipu's additions to the backup schemas, each marked x-quipu."""
    schemas = out["components"]["schemas"]
    request = schemas["CreateBackupRequest"]
    request["properties"]["type"]["enum"] = ["full", "incremental"]
    request["properties"]["type"]["x-quipu"] = "incremental: a full listing that records its parent"
    request["properties"]["parent"] = {
        "type": "string", "x-quipu": True,
        "description": "For type incremental: the backup it follows (default: the newest completed one).",
    }
    request["properties"]["name"]["pattern"] = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$"
    request["properties"]["name"]["x-quipu"] = "backup names are file names: 1 to 128 of A-Z a-z 0-9 . _ -, no leading dot"
    status = schemas["BackupStatus"]
    status["enum"] = status["enum"] + ["cancelled"]
    status["x-quipu"] = ("cancelled: stopped by DELETE /api/v3/enterprise/backup, DELETE "
                         "/api/v3/enterprise/restore/{id} or a server shutdown")
    item = schemas["FullBackupListItem"]
    item["properties"].update(BACKUP_EXTENSIONS)
    item["description"] = item["description"] + " quipu lists running, failed and cancelled backups too."
    out["paths"]["/api/v3/enterprise/backup"]["get"]["responses"]["503"]["description"] = (
        "Service unavailable. The server runs without a backup repository (quipu serve --no-backup).")

RESTORE_PROGRESS = {
    **PROGRESS,
    "properties": {**PROGRESS["properties"],
                   "phase": {"type": "string", "enum": ["staging", "rebuilding", "swapping", "done"]}},
}
RESTORE_EXTENSIONS = {
    "progress": {**RESTORE_PROGRESS, "description": "Where the restore stands; kept once it ended (x-quipu)."},
    "error": {"type": "string", "description": "Why a restore failed or was cancelled (x-quipu)."},
    "mode": {"type": "string", "enum": ["link", "copy"],
             "description": "How the backup's files were placed into the data folder (x-quipu)."},
    "verify": {"type": "string", "enum": ["auto", "full"], "description": "The verify level asked for (x-quipu)."},
}
RESTORE_VERIFY = {
    "type": "string", "enum": ["auto", "full"], "default": "auto", "x-quipu": True,
    "description": "How much of each object is read to check it against its blake3 name. auto: copy mode hashes "
                   "every byte it copies; link mode checks each object's size and the segment's header and footer "
                   "checksums (data blocks carry their own checksums, checked whenever read). full: hash every "
                   "byte in both modes.",
}
# A restore answers a write that was in flight during its swap with 503: the
# write was rolled back with everything after the backup.
ROLLED_BACK = {
    "description": "Service unavailable: a restore swapped in while this write was being logged and rolled it "
                   "back with every write after the backup (`Retry-After` says when to retry), or the engine is "
                   "closing or its write path failed.",
    "headers": {"Retry-After": {"description": "Seconds to wait before retrying (a rolled-back write).",
                                "schema": {"type": "integer", "minimum": 0}}},
    "content": copy.deepcopy(ERROR),
    "x-quipu": "the reference lists no 503 for writes",
}


def describe_restore(out):
    """quipu's additions to the restore schemas and answers, each marked x-quipu."""
    schemas = out["components"]["schemas"]
    request = schemas["CreateRestoreRequest"]
    request["properties"]["backup_name"]["minLength"] = 1
    request["properties"]["verify"] = RESTORE_VERIFY
    for name in ("RestoreListItem", "GetRestoreResponse"):
        schemas[name]["properties"].update(copy.deepcopy(RESTORE_EXTENSIONS))
    start = out["paths"]["/api/v3/enterprise/restore"]["post"]
    start["description"] += (
        "\n\n\nquipu: a restore is a rollback, in place and without a restart: the engine's data becomes the "
        "backup's, and every write after the backup is gone. Writes go on while the restore stages and checks "
        "the backup's files; during its swap they wait briefly, and one that was in flight gets 503 with "
        "`Retry-After`.")
    start["responses"]["400"] = {
        "description": "Bad request. The body is not JSON of this shape, `backup_name` is missing or empty, "
                       "`verify` is not `auto` or `full`, or the backup holds a segment format this build does not "
                       "read.",
        "content": copy.deepcopy(ERROR), "x-quipu": "the reference lists only the empty name"}
    start["responses"]["404"] = {"description": "Not found. No completed backup has that name.", "content": copy.deepcopy(ERROR),
                                 "x-quipu": "the reference lists no 404"}
    start["responses"]["503"]["description"] = (
        "Service unavailable. The server runs without a backup repository (quipu serve --no-backup), or is "
        "shutting down.")
    out["paths"]["/api/v3/enterprise/restore"]["get"]["responses"]["503"]["description"] = (
        "Service unavailable. The server runs without a backup repository (quipu serve --no-backup).")
    by_id = out["paths"]["/api/v3/enterprise/restore/{id}"]
    by_id["get"]["responses"]["503"]["description"] = (
        "Service unavailable. The server runs without a backup repository (quipu serve --no-backup).")
    by_id["delete"]["responses"]["404"]["description"] = (
        "Not found. No restore exists with that ID, the restore has ended, or it is already swapping in "
        "(past the point where a cancel can leave the data as it was).")
    by_id["delete"]["responses"]["503"] = {
        "description": "Service unavailable. The server runs without a backup repository (quipu serve --no-backup).",
        "content": copy.deepcopy(ERROR),
        "x-quipu": "the reference answers 404 when the restore engine is not present"}
    # Links from the list to one restore, so a stateful test reaches a real id.
    out["paths"]["/api/v3/enterprise/restore"]["get"]["responses"]["200"]["links"] = {
        name: {"operationId": op, "parameters": {"id": "$response.body#/restores/0/restore_id"}, "x-quipu": True}
        for name, op in (("GetNewestRestore", "GetEnterpriseRestoreById"),
                         ("CancelNewestRestore", "DeleteEnterpriseRestoreById"))
    }
    for path in ("/api/v3/write_lp", "/api/v2/write", "/write"):
        out["paths"][path]["post"]["responses"]["503"] = copy.deepcopy(ROLLED_BACK)


# What quipu enforces where the reference is silent, added to the copied
# schemas and marked `x-quipu`.
DB_NAME = {"minLength": 1, "maxLength": 64, "pattern": "^[A-Za-z0-9_-]+$",
           "x-quipu": "quipu database names: 1 to 64 characters of A-Z, a-z, 0-9, _ and -"}
V3_PRECISION = {"enum": ["auto", "nanosecond", "microsecond", "millisecond", "second", "ns", "n", "us", "u", "ms", "s"],
                "x-quipu": "the PrecisionWrite names, plus the short forms the reference's examples use"}
BUCKET_NAME = {"minLength": 1, "pattern": "^[A-Za-z0-9_-]{1,64}(/.*)?$",
               "x-quipu": "a quipu database name, optionally followed by /retention-policy (ignored)"}


NAMES = {"type": "array", "items": {"type": "string"}}
WINDOW = {
    "type": "object",
    "required": ["window", "start_ns", "end_ns", "rows", "time_min_ns", "time_max_ns", "segment_bytes"],
    "properties": {
        "window": {"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
                   "description": "The window's UTC date, as `windows=` takes it."},
        "start_ns": {"type": "integer", "description": "First nanosecond of the window (inclusive)."},
        "end_ns": {"type": "integer", "description": "End of the window (exclusive)."},
        "rows": {"type": "integer", "minimum": 0},
        "time_min_ns": {"type": "integer"},
        "time_max_ns": {"type": "integer"},
        "segment_bytes": {"type": "integer", "minimum": 0, "description": "Size of the compacted segment file."},
    },
}
# The reference types the export listings only as `object`: quipu's shapes.
EXPORT_ANSWERS = {
    "/api/v3/export/databases": {"type": "object", "required": ["databases"], "properties": {"databases": NAMES}},
    "/api/v3/export/tables": {"type": "object", "required": ["tables"], "properties": {"tables": NAMES}},
    "/api/v3/export/windows": {"type": "object", "required": ["windows"],
                               "properties": {"windows": {"type": "array", "items": WINDOW}}},
}
BAD_EXPORT_REQUEST = {
    "description": "A required parameter is missing or empty, or `windows` is not a list of YYYY-MM-DD dates.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorMessage"}}},
    "x-quipu": "the reference lists no 400 for export; quipu answers one for malformed parameters",
}


def describe_export(out):
    """Gives the export listings quipu's answer shapes and adds the 400."""
    for path, schema in EXPORT_ANSWERS.items():
        op = out["paths"][path]["get"]
        op["responses"]["200"]["content"]["application/json"]["schema"] = {**schema, "x-quipu": True}
    for path in ("/api/v3/export/tables", "/api/v3/export/windows", "/api/v3/export/window_data"):
        out["paths"][path]["get"]["responses"]["400"] = BAD_EXPORT_REQUEST


FIGURES = {
    "files_scanned": {"type": "integer", "minimum": 0, "description": "Segment files with blocks read."},
    "blocks_processed": {"type": "integer", "minimum": 0, "description": "Blocks decoded."},
    "rows_read": {"type": "integer", "minimum": 0,
                  "description": "Rows decoded from blocks plus rows taken from the write buffer."},
    "rows_returned": {"type": "integer", "minimum": 0, "description": "Rows the scan handed to the query."},
    "bytes_read": {"type": "integer", "minimum": 0, "description": "Stored (compressed) bytes of the blocks read."},
    "buffer_rows": {"type": "integer", "minimum": 0, "description": "Rows read from the write buffer."},
    "gen0_hits": {"type": "integer", "minimum": 0}, "gen0_misses": {"type": "integer", "minimum": 0},
    "compacted_hits": {"type": "integer", "minimum": 0}, "compacted_misses": {"type": "integer", "minimum": 0},
}
HITS = {"type": "object", "required": ["hits", "misses"],
        "properties": {"hits": {"type": "integer", "minimum": 0}, "misses": {"type": "integer", "minimum": 0}}}
TELEMETRY = {
    "type": "object",
    "required": ["query_id", "database", "query", "state", "started_at", "chunks", "totals", "cache"],
    "properties": {
        "query_id": {"type": "string"},
        "database": {"type": "string"},
        "query": {"type": "string"},
        "state": {"type": "string", "enum": ["running", "finished", "failed"]},
        "error": {"type": "string", "nullable": True},
        "started_at": {"type": "string", "format": "date-time"},
        "duration_ms": {"type": "number", "nullable": True},
        "chunks": {"type": "array", "description": "One entry per table scan, in the order the scans started.",
                   "items": {"type": "object", "required": ["table", "tag_filters"] + list(FIGURES),
                             "properties": {
                                 "table": {"type": "string"},
                                 "time_range": {"type": "object", "nullable": True,
                                                "description": "The pushed-down range [start_ns, end_ns).",
                                                "properties": {"start_ns": {"type": "integer"},
                                                               "end_ns": {"type": "integer"}}},
                                 "tag_filters": {"type": "object", "additionalProperties": {"type": "string"},
                                                 "description": "Pushed-down tag equalities."},
                                 **FIGURES}}},
        "totals": {"type": "object", "required": list(FIGURES), "properties": FIGURES},
        "cache": {"type": "object", "required": ["gen0", "compacted"],
                  "description": "Blocks whose bytes were (hits) or were not (misses) in the OS page cache before "
                                 "they were read, for gen0 (flushed) and compacted files.",
                  "properties": {"gen0": HITS, "compacted": HITS}},
    },
}
# `--query-memory-pool-bytes`: a query that cannot get memory from the pool the
# running queries share is refused with 503, not 400: retrying later can work.
QUERY_BUSY = {
    "description": Wrapped("Service unavailable: the queries running at the same time hold the memory all queries "
                           "share",
                           "(`--query-memory-pool-bytes`); `Retry-After` says when to retry."),
    "headers": {"Retry-After": {"description": "Seconds to wait before retrying.",
                                "schema": {"type": "integer", "minimum": 0}}},
    "content": ERROR,
    "x-quipu": True,
}
QUERY_EXTENSIONS = {
    "/api/v3/query_sql_telemetry": {
        "get": {
            "operationId": "GetQuerySqlTelemetry",
            "summary": "Telemetry of the last query",
            "description": "What the last query of `/api/v3/query_sql` or `/query` read, per table scan (chunk), "
                           "while it runs or once it is done: files scanned, blocks processed, rows read and "
                           "returned, bytes read, and page-cache hits and misses of gen0 and compacted files.",
            "x-quipu": "the reference names this endpoint but does not specify it",
            "responses": {
                "200": {"description": "The last query's figures.",
                        "content": {"application/json": {"schema": TELEMETRY}}},
                "401": {"$ref": "#/components/responses/Unauthorized"},
                "404": {"description": "No query has run on this server yet.", "content": ERROR},
            },
            "tags": ["Query data"],
        }
    }
}


def describe_query(out):
    """The error bodies and formats quipu answers on the query endpoints."""
    for path in ("/api/v3/query_sql", "/query"):
        for method in ("get", "post"):
            responses = out["paths"][path][method]["responses"]
            responses["400"] = {
                "description": Wrapped("Bad request: `db` or `q` missing, an unknown format or epoch, a body that "
                                       "is not the documented JSON, bad SQL, an unknown table or column, a parameter "
                                       "that does not fit, a failure before the first row (the planner's message), "
                                       "or a query past a limit (more memory than one query may use, "
                                       "`--query-memory-bytes`, or longer",
                                       "than `--query-timeout`)."),
                "content": copy.deepcopy(ERROR), "x-quipu": "the reference gives no body"}
            responses["404"] = {"description": "Database not found.", "content": copy.deepcopy(ERROR),
                                "x-quipu": "the reference gives no body"}
            responses["413"] = {"description": "The request body is larger than the limit.",
                                "content": copy.deepcopy(ERROR), "x-quipu": True}
            responses["503"] = copy.deepcopy(QUERY_BUSY)
    for method in ("get", "post"):
        ok = out["paths"]["/api/v3/query_sql"][method]["responses"]["200"]["content"]
        ok["text/plain"] = {"schema": {"type": "string"}, "x-quipu": "format=pretty: an ASCII table"}
    # `chunked=true` answers a JSON document per chunk, one per line.
    for method in ("get", "post"):
        ok = out["paths"]["/query"][method]["responses"]["200"]
        ok["description"] += ("\nquipu: `q` is run as SQL. With `chunked=true` the body is one JSON document per "
                              "chunk, one per line, all but the last with `\"partial\": true`.")


def drop_content_length(out):
    """Leaves out the reference's `Content-Length` header parameter: HTTP
    clients set it from the body; a test tool that sets it by hand to a value
    the body does not match leaves the server waiting for bytes that never come."""
    for item in out["paths"].values():
        for op in item.values():
            if isinstance(op, dict) and "parameters" in op:
                op["parameters"] = [p for p in op["parameters"] if p.get("$ref") != "#/components/parameters/ContentLength"
                                    and p.get("name") != "Content-Length"]
    out["components"].get("parameters", {}).pop("ContentLength", None)


def constrain(out):
    """Adds DB_NAME / BUCKET_NAME to the database parameters of the subset."""
    def patch(param, extra):
        param["schema"] = {**param.get("schema", {}), **extra}

    for param in out["paths"]["/api/v3/write_lp"]["post"]["parameters"]:
        if param.get("name") == "db":
            patch(param, DB_NAME)
        if param.get("name") == "precision":
            patch(param, V3_PRECISION)
    for param in out["paths"]["/api/v2/write"]["post"]["parameters"]:
        if param.get("name") == "bucket":
            patch(param, BUCKET_NAME)
    patch(out["components"]["parameters"]["dbWriteParam"], DB_NAME)


def refs(node, found):
    """Collects every `#/components/...` reference reachable from node."""
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str) and v.startswith("#/components/"):
                found.add(tuple(v[len("#/components/"):].split("/")))
            else:
                refs(v, found)
    elif isinstance(node, list):
        for v in node:
            refs(v, found)


class Dumper(yaml.SafeDumper):
    """safe_dump's dumper, giving the shared parts listed in ANCHORS their
    names and starting a new line at each part of a Wrapped string."""
    def generate_anchor(self, node):
        names = {id(part): name for name, part in ANCHORS.items()}
        for key, represented in self.represented_objects.items():
            if represented is node and key in names:
                return names[key]
        return super().generate_anchor(node)

    def write_plain(self, text, split=True):
        for i, part in enumerate(getattr(text, "parts", [text])):
            if i:
                self.write_indent()
            super().write_plain(part, split)

    def write_single_quoted(self, text, split=True):
        if not isinstance(text, Wrapped):
            return super().write_single_quoted(text, split)
        # One pair of quotes around all the parts: the parts are written
        # with the quote indicator turned off.
        self.write_indicator("'", True)
        self.write_indicator = lambda *args, **kwargs: None
        try:
            for i, part in enumerate(text.parts):
                if i:
                    self.write_indent()
                super().write_single_quoted(part, split)
        finally:
            del self.write_indicator
        self.write_indicator("'", False)


Dumper.add_representer(Wrapped, Dumper.represent_str)


def main():
    ref = yaml.safe_load(open(sys.argv[1]))
    out = {k: ref[k] for k in ("openapi", "info", "servers", "security") if k in ref}
    out["info"] = dict(out["info"])
    out["info"]["title"] = "quipu: the InfluxDB 3 Enterprise API subset it serves"
    out["info"]["description"] = (
        "The paths of the InfluxDB 3 Enterprise API that `quipu serve` implements, copied verbatim from "
        "the reference (shared/reference/influxdb3-enterprise-openapi.yaml). Extensions are marked `x-quipu: true`. "
        "Regenerate with scripts/openapi-subset.py."
    )
    out["servers"] = [{"url": "http://localhost:8181", "description": "quipu serve (default --http-bind)"}]
    paths = {}
    for path, methods in SERVED.items():
        item = ref["paths"][path]
        paths[path] = {k: v for k, v in item.items() if k in methods or k == "parameters"}
    paths.update(EXTENSIONS)
    paths.update(TRANSFER_EXTENSIONS)
    paths.update(QUERY_EXTENSIONS)
    out["paths"] = paths
    needed = set()
    refs(paths, needed)
    # securitySchemes named by the top-level security requirement
    for req in out.get("security", []):
        for name in req:
            needed.add(("securitySchemes", name))
    components = {}
    done = {("schemas", name) for name in QUIPU_SCHEMAS}
    while needed - done:
        for kind, name in sorted(needed - done):
            done.add((kind, name))
            node = ref["components"][kind][name]
            components.setdefault(kind, {})[name] = node
            more = set()
            refs(node, more)
            needed |= more
    # quipu's own schemas first, ahead of those copied from the reference.
    components["schemas"] = {**QUIPU_SCHEMAS, **components["schemas"]}
    out["components"] = components
    constrain(out)
    describe_export(out)
    describe_backup(out)
    describe_restore(out)
    describe_query(out)
    drop_content_length(out)
    out["info"]["description"] = Wrapped(
        out["info"]["description"] + " Differences from the reference: database and precision parameters carry the "
        "constraints quipu enforces (x-quipu); the export listings have quipu's answer shapes and a 400 for malformed "
        "parameters (x-quipu); backups may be incremental (a full listing recording its parent), may end cancelled, "
        "list quipu's progress and space fields, can be verified, and",
        "pushed to or pulled from remote repositories as jobs (`/transfer`) (x-quipu);",
        "restores take a `verify` level, answer 404 for an unknown backup and 400 for a malformed body, may end "
        "cancelled, and list their progress, error, mode and verify level (x-quipu); writes answer 503 with "
        "Retry-After when a restore rolled them back in flight (x-quipu); "
        "the query endpoints document their error bodies and quipu's pretty format, `/query` runs SQL, and "
        "`/api/v3/query_sql_telemetry`, which the reference names without specifying, is described (x-quipu); "
        "the hand-set Content-Length header parameter is left out (clients derive it from the body); and the "
        "scheme words of the Authorization header (`Bearer`, `Token`) are case-insensitive, as RFC 7235 has them."
    )
    yaml.dump(out, sys.stdout, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    main()

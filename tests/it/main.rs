//! The integration tests: one module per scenario (each file keeps the name
//! it had as a test binary of its own), linked into one binary, since every
//! binary links the whole engine with DataFusion and axum and linking them
//! one by one was most of a test build. Three stay binaries of their own,
//! because they change or measure the whole process: `tests/failpoints.rs`
//! (fail points, feature `failpoints`), `tests/relative_data_dir.rs` (the
//! working folder) and `tests/sparse_columns.rs` (a counting global
//! allocator, whose peaks other tests' allocations would inflate).
//!
//! A test that re-runs this binary as a child (a crash test's writer)
//! names itself with [`common::test_name`].

#[cfg(all(feature = "server", feature = "client"))]
#[path = "../client_support/mod.rs"]
mod client_support;
#[path = "../common/mod.rs"]
mod common;
#[path = "../crash_support/mod.rs"]
mod crash_support;
#[cfg(feature = "server")]
#[path = "../process_support/mod.rs"]
mod process_support;
#[cfg(feature = "remote")]
#[path = "../remote_support/mod.rs"]
mod remote_support;
#[cfg(feature = "server")]
#[path = "../server_support/mod.rs"]
mod server_support;

mod arango_api;
mod arango_client;
mod background_flush;
mod backup_api;
mod backup_chain_delete;
mod backup_crash;
mod backup_dedup;
mod backup_during_writes;
mod backup_fixture;
mod backup_io_error;
mod backup_recovery;
mod backup_verify_corrupt;
mod bad_writes;
mod bench_tsbs_sets;
mod catalog_log_crash;
mod catalog_log_fixture;
mod cli;
mod client_auth;
mod client_backup;
mod client_body_limit_split;
mod client_export;
mod client_no_partial;
mod client_progress;
mod client_query;
mod client_quoted_newlines;
mod client_rejected_lines;
mod client_restore;
mod client_transfer;
mod client_tsbs_batches;
mod client_unavailable;
mod client_unreachable;
mod compaction_backfill;
mod compaction_memory;
mod compat_fixture;
mod corruption;
mod crash_ingest;
mod deferred_delete;
mod disk_full;
mod export_cache;
mod export_cache_crash;
mod export_cache_fixture;
mod export_fixture;
mod export_roundtrip;
mod extreme_timestamps;
mod high_cardinality;
mod install_hooks;
mod lock;
mod lock_process;
mod python_clients;
mod remote_cli;
mod remote_crash;
mod remote_folder;
mod remote_pack_fixture;
mod remote_s3;
mod remote_sweep;
mod remote_sweep_concurrent;
mod restore_api;
mod restore_apply_failure;
mod restore_chain;
mod restore_corrupt;
mod restore_crash;
mod restore_during_writes;
mod restore_errors;
mod restore_round_trip;
mod restore_swap_redo;
mod restore_write_race;
mod roundtrip_arrow;
mod roundtrip_lp;
mod scan_partitions;
mod segment_format;
mod segment_map_budget;
mod serve_export_warm;
mod serve_process;
mod server_auth;
mod server_auth_before_routing;
mod server_bad_input;
mod server_error_bodies_json;
mod server_export;
mod server_health;
mod server_idle_connections;
mod server_metrics;
mod server_query;
mod server_shutdown;
mod server_shutdown_slow_client;
mod server_unauthorized_large_body;
mod server_write;
mod sql_duckdb;
mod sql_limits;
mod sql_pushdown_telemetry;
mod sql_table_names;
mod sql_table_provider;
mod table_limit;
mod transfer_api;
mod transfer_crash;
mod v2_backup_api;
mod wide_lines;

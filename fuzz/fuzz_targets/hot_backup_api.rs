//! Fuzzes what the ArangoDB hot-backup API decodes from a client: request
//! bodies (empty, JSON objects or refused), `remoteRepository` with its
//! rclone-style `config`, and backup ids. Any bytes give a typed refusal
//! or a value, never a panic; an accepted local repository is an absolute
//! path without `.` or `..` parts, an accepted id writes back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use quipu::server::arango::{hot_backup_id, parse_body, parse_hot_backup_id, parse_remote_repository};

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = parse_body(data) {
        let repository = body.get("remoteRepository").and_then(|r| r.as_str()).unwrap_or("");
        let empty = serde_json::Map::new();
        let config = body.get("config").and_then(|c| c.as_object()).unwrap_or(&empty);
        if let Ok((url, _)) = parse_remote_repository(repository, config) {
            if !url.starts_with("s3://") {
                assert!(url.starts_with('/'), "{url}");
                assert!(url.split('/').all(|p| p != "." && p != ".."), "{url}");
            }
        }
    }
    // The first line as a repository, the rest as its config.
    if let Ok(text) = std::str::from_utf8(data) {
        let (repository, config) = text.split_once('\n').unwrap_or((text, "{}"));
        if let Ok(serde_json::Value::Object(config)) = serde_json::from_str(config) {
            let _ = parse_remote_repository(repository, &config);
        }
        if let Some((secs, label)) = parse_hot_backup_id(text)
            && let Some(ns) = secs.checked_mul(1_000_000_000)
        {
            assert_eq!(hot_backup_id(ns, label), text);
        }
    }
});

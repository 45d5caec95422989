//! InfluxDB 2's bucket manifest, as its backup API lists buckets (the
//! `buckets` part of `GET /api/v2/backup/metadata`) and as
//! `POST /api/v2/restore/bucketMetadata` takes one: the field names and
//! shapes of InfluxDB 2's `BucketMetadataManifest` (influxdb `backup.go`;
//! issue 19). Durations are nanoseconds; times are RFC 3339 with an offset
//! (clients send `+00:00` and microseconds as well as `Z` and
//! nanoseconds); lists are written `[]`, never `null`, and a `null` list is
//! read as empty (Python clients reject `null`, some writers send it).

use serde::{Deserialize, Deserializer, Serialize};

/// One bucket: a database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BucketManifest {
    #[serde(rename = "organizationID")]
    pub organization_id: String,
    pub organization_name: String,
    #[serde(rename = "bucketID")]
    pub bucket_id: String,
    pub bucket_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub default_retention_policy: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub retention_policies: Vec<RetentionPolicyManifest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyManifest {
    pub name: String,
    #[serde(rename = "replicaN")]
    pub replica_n: i32,
    /// Nanoseconds; 0 is forever.
    pub duration: i64,
    pub shard_group_duration: i64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub shard_groups: Vec<ShardGroupManifest>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub subscriptions: Vec<SubscriptionManifest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardGroupManifest {
    pub id: u64,
    pub start_time: String,
    pub end_time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truncated_at: Option<String>,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub shards: Vec<ShardManifest>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ShardManifest {
    pub id: u64,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub shard_owners: Vec<ShardOwner>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardOwner {
    #[serde(rename = "nodeID")]
    pub node_id: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscriptionManifest {
    pub name: String,
    pub mode: String,
    #[serde(default, deserialize_with = "null_as_empty")]
    pub destinations: Vec<String>,
}

fn null_as_empty<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Vec<T>, D::Error> {
    Ok(Option::<Vec<T>>::deserialize(deserializer)?.unwrap_or_default())
}

/// A bucket manifest from JSON; `Err` says what is wrong: not the shape
/// above, or a time that is not RFC 3339 with an offset, or one outside
/// the nanosecond range, or a negative duration.
pub fn decode_bucket_manifest(bytes: &[u8]) -> Result<BucketManifest, String> {
    let manifest: BucketManifest = serde_json::from_slice(bytes).map_err(|e| format!("bucket manifest: {e}"))?;
    for policy in &manifest.retention_policies {
        if policy.duration < 0 || policy.shard_group_duration < 0 {
            return Err(format!("retention policy {:?}: a negative duration", policy.name));
        }
        for group in &policy.shard_groups {
            let times = [Some(&group.start_time), Some(&group.end_time), group.deleted_at.as_ref()];
            for time in times.into_iter().flatten().chain(group.truncated_at.as_ref()) {
                parse_time(time).map_err(|why| format!("shard group {}: {why}", group.id))?;
            }
        }
    }
    Ok(manifest)
}

/// Nanoseconds since the epoch of an RFC 3339 time with an offset.
pub fn parse_time(text: &str) -> Result<i64, String> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map_err(|e| format!("time {text:?} is not RFC 3339 with an offset: {e}"))?
        .timestamp_nanos_opt()
        .ok_or_else(|| format!("time {text:?} is outside the nanosecond range (1677 to 2262)"))
}

/// A JSON array of bucket manifests, as the metadata's `buckets` part.
pub fn encode_buckets(buckets: &[BucketManifest]) -> Vec<u8> {
    // Plain structs of strings and numbers always serialise.
    serde_json::to_vec(buckets).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn manifest(groups: Vec<(u64, i64, i64)>) -> BucketManifest {
        BucketManifest {
            organization_id: "0000000000000001".into(),
            organization_name: "quipu".into(),
            bucket_id: crate::backup::v2_ids::bucket_id(0),
            bucket_name: "db".into(),
            description: None,
            default_retention_policy: "autogen".into(),
            retention_policies: vec![RetentionPolicyManifest {
                name: "autogen".into(),
                replica_n: 1,
                duration: 0,
                shard_group_duration: 86_400_000_000_000,
                shard_groups: groups
                    .into_iter()
                    .map(|(id, start, end)| ShardGroupManifest {
                        id,
                        start_time: crate::backup::rfc3339(start),
                        end_time: crate::backup::rfc3339(end),
                        deleted_at: None,
                        truncated_at: None,
                        shards: vec![ShardManifest { id, shard_owners: vec![ShardOwner { node_id: 0 }] }],
                    })
                    .collect(),
                subscriptions: vec![],
            }],
        }
    }

    proptest! {
        #[test]
        fn manifests_round_trip(groups in proptest::collection::vec((any::<u64>(), any::<i64>(), any::<i64>()), 0..5)) {
            let m = manifest(groups);
            let bytes = encode_buckets(std::slice::from_ref(&m));
            let text = String::from_utf8(bytes.clone()).unwrap();
            prop_assert!(!text.contains("null"), "{}", text);
            let array: Vec<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
            let one = serde_json::to_vec(&array[0]).unwrap();
            prop_assert_eq!(decode_bucket_manifest(&one).unwrap(), m);
        }

        #[test]
        fn any_bytes_are_refused_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_bucket_manifest(&bytes);
        }
    }

    #[test]
    fn what_clients_send_is_read_and_what_is_wrong_is_named() {
        // As the Python client sends it: `+00:00`, microseconds, null lists.
        let python = br#"{"organizationID":"0000000000000001","organizationName":"o","bucketID":"0000000000000002",
            "bucketName":"b","defaultRetentionPolicy":"autogen","retentionPolicies":[{"name":"autogen","replicaN":1,
            "duration":0,"shardGroupDuration":604800000000000,"shardGroups":[{"id":7,
            "startTime":"2024-01-01T00:00:00.000001+00:00","endTime":"2024-01-08T00:00:00Z","shards":null}],
            "subscriptions":null}]}"#;
        let m = decode_bucket_manifest(python).unwrap();
        assert_eq!(m.retention_policies[0].shard_groups[0].id, 7);
        assert!(m.retention_policies[0].shard_groups[0].shards.is_empty());
        assert_eq!(parse_time("2024-01-01T00:00:00.000001+00:00").unwrap(), 1_704_067_200_000_001_000);
        let naive = String::from_utf8_lossy(python).replace("+00:00", "");
        assert!(decode_bucket_manifest(naive.as_bytes()).unwrap_err().contains("RFC 3339"));
        let far = String::from_utf8_lossy(python).replace("2024-01-08", "2300-01-08");
        assert!(decode_bucket_manifest(far.as_bytes()).unwrap_err().contains("nanosecond range"));
        let negative = String::from_utf8_lossy(python).replace("\"duration\":0", "\"duration\":-1");
        assert!(decode_bucket_manifest(negative.as_bytes()).unwrap_err().contains("negative"));
        assert!(decode_bucket_manifest(b"[]").unwrap_err().starts_with("bucket manifest:"));
    }
}

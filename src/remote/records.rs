//! The small records a remote holds besides a repository's own files: the
//! `QUIPU-REPO` marker as a remote checks it (the local repository's
//! `RepoInfo`), and sweep plans
//! (`sweeps/<ulid>.json`). Both are JSON; both decoders take any bytes.

use crate::backup::manifest::is_object_name;
use crate::backup::repo::{REPO_FORMAT, RepoInfo, RepoInfoProblem};

#[derive(serde::Serialize, serde::Deserialize)]
struct Plan {
    objects: Vec<String>,
    /// The grace period the sweep that wrote it runs with, in seconds: a
    /// push keeps to the longest it sees.
    #[serde(default)]
    grace_secs: u64,
}

/// Checks a remote's marker, the local repository's own (`RepoInfo`):
/// `Err` says why it is not one this build reads.
pub fn check_marker(bytes: &[u8]) -> Result<(), String> {
    RepoInfo::decode(bytes).map(drop).map_err(|problem| match problem {
        RepoInfoProblem::Malformed(what) => format!("not a repository marker: {what}"),
        RepoInfoProblem::Format(found) => format!("repository format {found} (this build reads {REPO_FORMAT})"),
    })
}

pub fn encode_sweep_plan(objects: &[String], grace_secs: u64) -> Vec<u8> {
    serde_json::to_vec(&Plan { objects: objects.to_vec(), grace_secs }).unwrap_or_default()
}

/// The objects a plan names and its grace period in seconds; `Err` for
/// anything but a plan of object names (a plan is what a sweep deletes by:
/// it may name nothing else).
pub fn decode_sweep_plan(bytes: &[u8]) -> Result<(Vec<String>, u64), String> {
    let plan: Plan = serde_json::from_slice(bytes).map_err(|e| format!("sweep plan: {e}"))?;
    if let Some(bad) = plan.objects.iter().find(|name| !is_object_name(name)) {
        return Err(format!("sweep plan names {bad:?}, which is not an object name"));
    }
    Ok((plan.objects, plan.grace_secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn plans_round_trip(names in proptest::collection::vec("[0-9a-f]{64}", 0..20), grace in any::<u64>()) {
            prop_assert_eq!(decode_sweep_plan(&encode_sweep_plan(&names, grace)).unwrap(), (names, grace));
        }

        #[test]
        fn markers_check(id in any::<u128>(), at in "[ -~]{0,40}") {
            prop_assert!(check_marker(&RepoInfo::new(id, &at).encode()).is_ok());
        }

        #[test]
        fn any_bytes_are_refused_or_read(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode_sweep_plan(&bytes);
            let _ = check_marker(&bytes);
        }
    }

    #[test]
    fn a_plan_naming_anything_but_objects_is_refused() {
        assert!(decode_sweep_plan(br#"{"objects": ["../manifests/b.json"]}"#).is_err());
        assert!(check_marker(br#"{"format": 2, "repo_id": "x", "created_at": "y"}"#).unwrap_err().contains("format 2"));
    }
}

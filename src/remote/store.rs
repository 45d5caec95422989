//! A remote's URL turned into an object store and a prefix inside it:
//! `s3://bucket[/prefix]` (Amazon S3 or any S3-compatible server),
//! `file:///abs/path`, or a plain folder path.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;

use super::{RemoteError, RemoteOptions};
use crate::error::Result;

/// The store, the prefix in it, and for a folder remote the folder (which
/// object_store's file system never fsyncs: the remote does).
pub(super) type Opened = (Arc<dyn ObjectStore>, StorePath, Option<std::path::PathBuf>);

pub(super) fn open(url: &str, options: &RemoteOptions) -> Result<Opened> {
    let invalid = |why: String| RemoteError::InvalidUrl { url: url.to_string(), why };
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(invalid("no bucket: write s3://bucket/prefix".into()).into());
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        // An endpoint from the options or the environment (AWS_ENDPOINT_URL)
        // that says http means plain HTTP is wanted.
        let endpoint = options.endpoint.clone().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok());
        if let Some(endpoint) = &endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(region) = &options.region {
            builder = builder.with_region(region);
        }
        if let Some(key) = &options.access_key_id {
            builder = builder.with_access_key_id(key);
        }
        if let Some(secret) = &options.secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        if let Some(token) = &options.session_token {
            builder = builder.with_token(token);
        }
        let store = builder.build().map_err(|e| invalid(e.to_string()))?;
        let prefix = StorePath::parse(prefix.trim_matches('/')).map_err(|e| invalid(e.to_string()))?;
        return Ok((Arc::new(store), prefix, None));
    }
    let folder = match url.strip_prefix("file://") {
        Some(path) => path,
        None if url.contains("://") => {
            return Err(invalid("unknown scheme: use s3://bucket/prefix, file:///path or a folder path".into()).into());
        }
        None => url,
    };
    if folder.is_empty() {
        return Err(invalid("no folder".into()).into());
    }
    // The file system's root with the folder as the prefix, rather than a
    // store rooted at the folder: that one needs the folder to exist, and a
    // mistyped folder would be created by a mere check. Writes make the
    // folders they need.
    let absolute = std::path::absolute(folder).map_err(|e| invalid(e.to_string()))?;
    let prefix = StorePath::from_absolute_path(&absolute).map_err(|e| invalid(e.to_string()))?;
    Ok((Arc::new(LocalFileSystem::new()), prefix, Some(absolute)))
}

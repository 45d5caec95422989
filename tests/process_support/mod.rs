//! `quipu serve` as a child process (for kill -9 tests): started on a free
//! loopback port with a data folder and a backup repository, killed when
//! dropped (a panic included).
#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(60)).build().unwrap()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A running `quipu serve`.
pub struct Serve {
    pub child: Child,
    pub base: String,
}

impl Serve {
    /// Starts `quipu serve` on `data` with backups in `repo` (`mode`: auto,
    /// link or copy) and the admin token `token`; its stderr goes to `log`.
    /// `ctx` names the run in failures.
    pub fn start(data: &Path, repo: &Path, mode: &str, token: &str, log: &Path, ctx: &dyn std::fmt::Display) -> Serve {
        Serve::start_with(data, repo, mode, token, log, ctx, &[])
    }

    /// [`Serve::start`] with more `quipu serve` arguments.
    pub fn start_with(
        data: &Path,
        repo: &Path,
        mode: &str,
        token: &str,
        log: &Path,
        ctx: &dyn std::fmt::Display,
        extra: &[&str],
    ) -> Serve {
        let http = http();
        for _ in 0..5 {
            let port = free_port();
            let stderr = std::fs::File::create(log).unwrap();
            let child = Command::new(env!("CARGO_BIN_EXE_quipu"))
                .args(["serve", "--data-dir", data.to_str().unwrap(), "--http-bind", &format!("127.0.0.1:{port}")])
                .args(["--backup-dir", repo.to_str().unwrap(), "--backup-mode", mode])
                .args(extra)
                .env("QUIPU_ADMIN_TOKEN", token)
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .unwrap();
            let mut serve = Serve { child, base: format!("http://127.0.0.1:{port}") };
            // A liveness bound, not a timing assertion.
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let health = http.get(format!("{}/health", serve.base)).bearer_auth(token).send();
                if health.is_ok_and(|r| r.status() == 200) {
                    return serve;
                }
                if let Some(status) = serve.child.try_wait().unwrap() {
                    let text = std::fs::read_to_string(log).unwrap_or_default();
                    // Someone took the port between our look and the bind.
                    if text.contains("cannot listen on") {
                        break;
                    }
                    panic!("{ctx}: quipu serve exited with {status} while starting:\n{text}");
                }
                assert!(Instant::now() < deadline, "{ctx}: quipu serve never answered /health (log {})", log.display());
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("{ctx}: no free port for quipu serve after 5 tries");
    }

    /// SIGKILL (`Child::kill` on unix).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        self.kill();
    }
}

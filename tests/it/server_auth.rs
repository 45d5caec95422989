//! Every endpoint wants the admin token; the accepted forms; token resolution.
#![cfg(feature = "server")]

use crate::server_support as common;

use base64::Engine as _;
use common::{TOKEN, TestServer, bearer, client, json};
use quipu::server::{ADMIN_TOKEN_HASH_FILE, SERVER_DIR, ServerError, resolve_admin_token};

const LINE: &str = "cpu,host=a usage=1 1638360000000000000";

#[test]
fn missing_token_is_401_json_on_every_endpoint() {
    let server = TestServer::start();
    let c = client();
    for (method, path) in [
        ("POST", "/api/v3/write_lp?db=db1"),
        ("POST", "/api/v2/write?bucket=db1"),
        ("POST", "/write?db=db1"),
        ("GET", "/health"),
        ("GET", "/api/v1/health"),
        ("GET", "/ping"),
        ("POST", "/ping"),
    ] {
        let req = c.request(method.parse().unwrap(), server.url(path)).body(LINE);
        let (status, body) = json(req.send().unwrap());
        assert_eq!(status, 401, "{method} {path}");
        assert_eq!(body["data"], serde_json::Value::Null);
    }
    assert_eq!(server.rows("db1", "cpu"), 0);
}

#[test]
fn wrong_token_is_401_json() {
    let server = TestServer::start();
    let c = client();
    for auth in ["Bearer wrong", "Token wrong", &format!("Bearer {TOKEN}x"), "Bearer", "garbage", "bearer x"] {
        let resp =
            c.post(server.url("/api/v3/write_lp?db=db1")).header("Authorization", auth).body(LINE).send().unwrap();
        let (status, body) = json(resp);
        assert_eq!(status, 401, "{auth}");
        assert!(!body.to_string().contains(TOKEN), "the token is echoed: {body}");
    }
    let resp = c.post(server.url("/write?db=db1&p=wrong")).body(LINE).send().unwrap();
    assert_eq!(json(resp).0, 401);
    assert_eq!(server.rows("db1", "cpu"), 0);
}

#[test]
fn scheme_words_are_case_insensitive_on_every_route() {
    let server = TestServer::start();
    let c = client();
    for scheme in ["bearer", "BEARER", "token", "tOkEn"] {
        let auth = format!("{scheme} {TOKEN}");
        let resp =
            c.post(server.url("/api/v3/write_lp?db=db1")).header("Authorization", &auth).body(LINE).send().unwrap();
        assert_eq!(resp.status(), 204, "{scheme}");
        let resp = c.get(server.url("/api/v3/export/databases")).header("Authorization", &auth).send();
        assert_eq!(resp.unwrap().status(), 200, "{scheme}");
    }
    // Another scheme, in any case, is still refused.
    let resp =
        c.post(server.url("/api/v3/write_lp?db=db1")).header("Authorization", format!("digest {TOKEN}")).body(LINE);
    assert_eq!(resp.send().unwrap().status(), 401);
}

#[test]
fn bearer_and_token_forms_work_on_all_write_endpoints() {
    let server = TestServer::start();
    let c = client();
    let mut n = 0;
    for path in ["/api/v3/write_lp?db=db1", "/api/v2/write?bucket=db1", "/write?db=db1"] {
        for scheme in ["Bearer", "Token"] {
            n += 1;
            let line = format!("cpu,host=a usage=1 {}", 1638360000000000000i64 + n);
            let resp = c
                .post(server.url(path))
                .header("Authorization", format!("{scheme} {TOKEN}"))
                .body(line)
                .send()
                .unwrap();
            assert_eq!(resp.status().as_u16(), 204, "{scheme} on {path}");
        }
    }
    assert_eq!(server.rows("db1", "cpu"), n as usize);
}

#[test]
fn v1_accepts_p_query_and_basic_v3_and_v2_do_not() {
    let server = TestServer::start();
    let c = client();
    let resp = c.post(server.url(&format!("/write?db=db1&u=anyone&p={TOKEN}"))).body(LINE).send().unwrap();
    assert_eq!(resp.status().as_u16(), 204);

    let basic = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("ignored:{TOKEN}")));
    let line2 = "cpu,host=b usage=1 1638360000000000000";
    let resp = c.post(server.url("/write?db=db1")).header("Authorization", &basic).body(line2).send().unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    assert_eq!(server.rows("db1", "cpu"), 2);

    // p= is a v1 credential only; Basic is v1 only.
    let resp = c.post(server.url(&format!("/api/v3/write_lp?db=db1&p={TOKEN}"))).body(LINE).send().unwrap();
    assert_eq!(json(resp).0, 401);
    for path in ["/api/v3/write_lp?db=db1", "/api/v2/write?bucket=db1"] {
        let resp = c.post(server.url(path)).header("Authorization", &basic).body(LINE).send().unwrap();
        assert_eq!(json(resp).0, 401, "{path}");
    }
    // A wrong p wins over a right header: p is the credential when present.
    let resp = c.post(server.url("/write?db=db1&p=nope")).header("Authorization", bearer()).body(LINE).send().unwrap();
    assert_eq!(json(resp).0, 401);
}

#[test]
fn token_from_env_wins_and_is_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tok");
    std::fs::write(&file, "from-file").unwrap();
    let (token, printed) = resolve_admin_token(dir.path(), Some(" from-env\n".into()), Some(&file)).unwrap();
    assert!(token.verify("from-env"));
    assert!(printed.is_none());
    assert!(!dir.path().join(SERVER_DIR).exists(), "nothing stored for an env token");
    assert!(matches!(resolve_admin_token(dir.path(), Some("  ".into()), None), Err(ServerError::EmptyEnvToken)));
}

#[test]
fn token_from_file_trimmed_and_empty_file_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("tok");
    std::fs::write(&file, "  apiv3_filetoken \n").unwrap();
    let (token, printed) = resolve_admin_token(dir.path(), None, Some(&file)).unwrap();
    assert!(token.verify("apiv3_filetoken"));
    assert!(printed.is_none());

    std::fs::write(&file, " \n\t").unwrap();
    let err = resolve_admin_token(dir.path(), None, Some(&file)).unwrap_err();
    assert!(matches!(&err, ServerError::EmptyTokenFile { path } if path == &file), "{err}");
    assert!(err.to_string().contains(file.to_str().unwrap()));

    let missing = dir.path().join("missing");
    let err = resolve_admin_token(dir.path(), None, Some(&missing)).unwrap_err();
    assert!(matches!(err, ServerError::ReadTokenFile { .. }));
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn all_bytes(dir: &std::path::Path) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(all_bytes(&path));
        } else {
            out.push(std::fs::read(&path).unwrap());
        }
    }
    out
}

#[test]
fn generated_once_then_loaded_from_hash_file_without_the_token_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let (first, printed) = resolve_admin_token(dir.path(), None, None).unwrap();
    let token = printed.expect("a new token is returned to print");
    assert!(token.starts_with("apiv3_") && token.len() >= 6 + 43, "{token}");
    assert!(first.verify(&token));

    let hash_file = dir.path().join(SERVER_DIR).join(ADMIN_TOKEN_HASH_FILE);
    assert_eq!(std::fs::read_to_string(&hash_file).unwrap().trim(), blake3::hash(token.as_bytes()).to_hex().as_str());
    let secret = token.strip_prefix("apiv3_").unwrap().as_bytes();
    for bytes in all_bytes(dir.path()) {
        assert!(!contains(&bytes, secret), "the token is stored in the data folder");
    }

    let (again, printed) = resolve_admin_token(dir.path(), None, None).unwrap();
    assert!(printed.is_none(), "a token is printed only when generated");
    assert_eq!(again, first);
    assert!(again.verify(&token));
    assert!(!again.verify("apiv3_other"));
}

#[test]
fn corrupt_hash_file_is_an_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    resolve_admin_token(dir.path(), None, None).unwrap();
    let hash_file = dir.path().join(SERVER_DIR).join(ADMIN_TOKEN_HASH_FILE);
    for bad in [&b"not a hash"[..], &[0xff; 64][..], &b""[..], "z".repeat(64).as_bytes()] {
        std::fs::write(&hash_file, bad).unwrap();
        let err = resolve_admin_token(dir.path(), None, None).unwrap_err();
        assert!(matches!(err, ServerError::CorruptTokenHash { .. }), "{err}");
        assert!(err.to_string().contains(hash_file.to_str().unwrap()), "{err}");
    }
    // An env token still works with a corrupt file around.
    assert!(resolve_admin_token(dir.path(), Some("x".into()), None).unwrap().0.verify("x"));
}

//! A request refused before its body is read (a wrong or missing token, a
//! declared length over the limit) still gets its JSON answer: the server
//! drains the unread body before closing instead of resetting the
//! connection under a client that is still sending.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client, json};

/// Several MB of valid line protocol, well under the default 10 MiB limit.
fn big_body() -> Vec<u8> {
    let mut body = Vec::new();
    let mut i = 0u64;
    while body.len() < 6 << 20 {
        body.extend_from_slice(
            format!("cpu,host=h{} usage={i}i {}\n", i % 100, 1_600_000_000_000_000_000 + i).as_bytes(),
        );
        i += 1;
    }
    body
}

#[test]
fn large_body_with_a_bad_token_gets_its_401() {
    let server = TestServer::start();
    let http = client();
    let body = big_body();
    for auth in [Some("Bearer apiv3_wrong"), None] {
        for _ in 0..3 {
            let mut req = http.post(server.url("/api/v3/write_lp?db=db1")).body(body.clone());
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let resp = req.send().unwrap_or_else(|e| panic!("{auth:?}: no answer: {e:?}"));
            let (status, answer) = json(resp);
            assert_eq!(status, 401, "{auth:?}: {answer}");
        }
    }
    assert_eq!(server.rows("db1", "cpu"), 0, "nothing written without the token");
}

#[test]
fn body_declared_over_the_limit_gets_its_413() {
    let server = TestServer::with_limit(2 << 20);
    let body = big_body();
    for _ in 0..3 {
        let resp = client()
            .post(server.url("/api/v3/write_lp?db=db1"))
            .header("Authorization", bearer())
            .body(body.clone())
            .send()
            .unwrap_or_else(|e| panic!("no answer: {e:?}"));
        let (status, answer) = json(resp);
        assert_eq!(status, 413, "{answer}");
    }
}

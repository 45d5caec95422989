//! The token is checked before routing: without it, an unknown path or a
//! wrong method is 401 like any endpoint (not 404/405), so a client that
//! cannot use the API learns nothing about which endpoints exist. With the
//! token, the same requests get their JSON 404 and 405.
#![cfg(feature = "server")]

use crate::server_support as common;

use common::{TestServer, bearer, client, json};

const UNKNOWN_PATHS: [&str; 3] = ["/nope", "/api/v3/configure/database", "/api/v3/write_lp/extra"];
const WRONG_METHODS: [(&str, &str); 3] = [("GET", "/api/v3/write_lp"), ("PUT", "/write"), ("POST", "/health")];

#[test]
fn unknown_paths_and_wrong_methods_need_the_token_first() {
    let server = TestServer::start();
    let http = client();
    for auth in [None, Some("Bearer wrong"), Some("Basic Zm9vOmJhcg==")] {
        for path in UNKNOWN_PATHS {
            let mut req = http.get(server.url(path));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let (status, body) = json(req.send().unwrap());
            assert_eq!(status, 401, "GET {path} with {auth:?}: {body}");
        }
        for (method, path) in WRONG_METHODS {
            let mut req = http.request(method.parse().unwrap(), server.url(path));
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let (status, body) = json(req.send().unwrap());
            assert_eq!(status, 401, "{method} {path} with {auth:?}: {body}");
        }
    }
    for path in UNKNOWN_PATHS {
        let (status, body) = json(http.get(server.url(path)).header("Authorization", bearer()).send().unwrap());
        assert_eq!(status, 404, "GET {path}: {body}");
    }
    for (method, path) in WRONG_METHODS {
        let req = http.request(method.parse().unwrap(), server.url(path)).header("Authorization", bearer());
        let (status, body) = json(req.send().unwrap());
        assert_eq!(status, 405, "{method} {path}: {body}");
    }
}

//! Per-call cost of the contract checks on the S6 benchmark's bodies, for
//! profiling (`cargo run --release -p portcullis-contract --example cost`).
//! Not a benchmark of record: bench/run.sh measures the gateway.

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use portcullis_contract::{Options, ResponsePlan, compile};
use std::time::Instant;

const DOC: &str = include_str!("../../../bench/s6-openapi.yaml");
const BODY_217: &str = r#"{"item":"book","quantity":2,"gift_note":"Happy birthday, see you soon!!!!!","customer":{"name":"Alice Example","city":"Lyon","country":"FR"},"tags":["gift","priority"],"delivery":"standard","coupon":"SPRING-2026-VIP"}"#;
const RESPONSE: &str = r#"{"id":"1001","item":"book","quantity":1,"status":"shipped","total":{"amount":"12.50","currency":"EUR"},"tags":["a","b"]}"#;

fn time(name: &str, n: u32, mut f: impl FnMut()) {
    for _ in 0..n / 10 {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name:40} {:8.2} µs",
        t.elapsed().as_secs_f64() * 1e6 / f64::from(n)
    );
}

fn main() {
    let c = compile(DOC, &Options::default()).expect("document");
    let op = c.operations[0].clone();
    let mut h = HeaderMap::new();
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let body = Bytes::from_static(BODY_217.as_bytes());
    let n = 100_000;
    time("json::parse 217 B", n, || {
        portcullis_contract::json::parse(
            body.as_ref(),
            &portcullis_contract::JsonLimits::default(),
        )
        .unwrap();
    });
    time("serde_json::from_slice 217 B", n, || {
        let _: serde_json::Value = serde_json::from_slice(body.as_ref()).unwrap();
    });
    time("check_body 217 B", n, || {
        op.check_body(&h, body.clone()).unwrap();
    });
    time("check_params (no query)", n, || {
        op.check_params(&[], None, &h).unwrap();
    });
    time("check_accept", n, || op.check_accept(&h).unwrap());
    let ResponsePlan::Inspect {
        spec: Some(spec), ..
    } = op.response_plan(200, Some("application/json"))
    else {
        panic!()
    };
    time("filter_response 118 B", n, || {
        op.filter_response(spec, RESPONSE.as_bytes(), false)
            .unwrap();
    });
    let patterns = portcullis_contract::sensitive::Patterns::default();
    time("sensitive::find 118 B", n, || {
        assert!(portcullis_contract::sensitive::find(RESPONSE, &patterns).is_none());
    });
    time("looks_like_stack_trace 118 B", n, || {
        assert!(!portcullis_contract::sensitive::looks_like_stack_trace(
            RESPONSE
        ));
    });
    // Issue 16 item 2: the hostile query that made the token scan quadratic,
    // at 15 KB and 60 KB, beside plain text of the same sizes.
    for size in [15_000, 60_000] {
        let hostile = "eyJ".repeat(size / 3);
        let plain = "a".repeat(size);
        time(&format!("sensitive::find {size} B of eyJ"), 200, || {
            let _ = portcullis_contract::sensitive::find(&hostile, &patterns);
        });
        time(&format!("sensitive::find {size} B plain"), 200, || {
            let _ = portcullis_contract::sensitive::find(&plain, &patterns);
        });
    }
}

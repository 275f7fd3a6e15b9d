//! The JSON body validator on arbitrary bytes (INPUT-03/04/06): never
//! panics; what it accepts is valid JSON that serde_json reads the same
//! way, carries only declared properties, and passes a second check
//! unchanged. Response filtering never lets a `secret` field through.
#![no_main]

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use portcullis_contract::{json, Operation, Options, ResponsePlan};
use std::sync::{Arc, OnceLock};

fn ops() -> &'static (Arc<Operation>, Arc<Operation>) {
    static OPS: OnceLock<(Arc<Operation>, Arc<Operation>)> = OnceLock::new();
    OPS.get_or_init(|| {
        let c = portcullis_contract::compile(
            include_str!("../../crates/portcullis/demo/orders-openapi.yaml"),
            &Options::default(),
        )
        .expect("demo document");
        let find = |id: &str| c.operations.iter().find(|o| o.id == id).unwrap().clone();
        (find("createOrder"), find("getOrder"))
    })
}

fuzz_target!(|data: &[u8]| {
    // The limits parser agrees with serde_json wherever it accepts.
    if let Ok(ours) = json::parse(data, &json::JsonLimits::default()) {
        let theirs: serde_json::Value = serde_json::from_slice(data).expect("accepted JSON is JSON");
        assert_eq!(ours, theirs);
    }
    let (create, get) = ops();
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    if let Ok(out) = create.check_body(&headers, Bytes::copy_from_slice(data)) {
        let v: serde_json::Value = serde_json::from_slice(&out).expect("forwarded body is JSON");
        let obj = v.as_object().expect("the schema requires an object");
        assert!(obj.keys().all(|k| ["item", "quantity", "gift_note", "receipt_pdf"].contains(&k.as_str())));
        assert_eq!(create.check_body(&headers, out.clone()).expect("idempotent"), out);
    }
    if let ResponsePlan::Inspect { spec: Some(spec), .. } = get.response_plan(200, Some("application/json")) {
        if let Ok(out) = get.filter_response(spec, data, false) {
            let body = out.body.unwrap_or_else(|| Bytes::copy_from_slice(data));
            let v: serde_json::Value = serde_json::from_slice(&body).expect("response stays JSON");
            // The secret-labelled property of an order never survives.
            if let Some(obj) = v.as_object() {
                assert!(!obj.contains_key("cost_price_cents"));
            }
        }
    }
});

//! Instructions the stage-8 limiter adds per request, for BENCH.md's
//! "≤ 1 µs" target: run under `valgrind --tool=callgrind` twice,
//! `limiter_cost none 200000` and `limiter_cost client 200000`, and divide
//! the difference in total instructions by the count.
//!
//! `cargo build --release -p portcullis-gateway --example limiter_cost`

use portcullis_gateway::pipeline::throttle::Throttle;
use std::net::IpAddr;

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "client".into());
    let n: u32 = args.next().and_then(|v| v.parse().ok()).unwrap_or(200_000);
    let limits = match mode.as_str() {
        "none" => "",
        _ => "    rate_limits: [{ per: client, requests: 4000000000, per_seconds: 1 }]\n",
    };
    let yaml = format!(
        "mode: dev\nlisteners: [{{ name: p, bind: '127.0.0.1:0', plaintext: dangerous_serve }}]\nupstreams: {{ u: {{ url: 'http://127.0.0.1:1', dangerous_plaintext_upstream: true }} }}\napis:\n  - name: a\n    upstream: u\n    routes: [{{ path: /x, methods: [GET], auth: public }}]\n{limits}"
    );
    let config = portcullis_config::parse(&yaml, std::path::Path::new("/")).expect("config");
    let (throttle, table) = Throttle::build(&config, None);
    let route = table[0][0].clone();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let mut admitted = 0u32;
    rt.block_on(async {
        for i in 0..n {
            let client = IpAddr::from([10, 0, (i % 200) as u8, 1]);
            if throttle.admit(&route, None, client, "GET /x").await.is_ok() {
                admitted += 1;
            }
        }
    });
    println!("{mode}: {admitted} of {n} admitted");
}

//! Spans over OTLP (OPS-01): with `trace_context.otlp`, every sampled
//! request becomes one server span of the gateway, exported in batches by
//! OpenTelemetry's SDK over OTLP/HTTP (JSON) to the configured collector,
//! its trust anchors explicit as for every other collector; off by default.
//!
//! The gateway is then a hop of the trace: the span's parent is the
//! client's `traceparent` span (none when the gateway started the trace),
//! and the upstream receives the gateway's span as its parent
//! (`pipeline/trace.rs`). A span carries what the access log carries —
//! method, the path as events give it (classified parameters masked), API,
//! operation, status, the refusal's code, the upstream target and the time
//! spent waiting for it — and never a header, query or body.

use crate::pipeline::trace::TraceContext;
use bytes::Bytes;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanId, SpanKind, Status, TraceContextExt, TraceFlags, TraceId,
    TraceState, Tracer as _, TracerProvider as _,
};
use opentelemetry::{Context, KeyValue};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator, SdkTracerProvider, Tracer};
use std::cell::Cell;
use std::time::{Duration, SystemTime};

thread_local! {
    /// The ids the next span built on this thread takes: those the
    /// request's `traceparent` already carries to the upstream.
    static NEXT_IDS: Cell<Option<(TraceId, SpanId)>> = const { Cell::new(None) };
}

/// Gives a span the ids set in [`NEXT_IDS`] (random ones otherwise): the
/// span must carry the ids the upstream was told, not new ones.
#[derive(Debug, Default)]
struct RequestIds(RandomIdGenerator);

impl IdGenerator for RequestIds {
    fn new_trace_id(&self) -> TraceId {
        NEXT_IDS
            .with(Cell::get)
            .map_or_else(|| self.0.new_trace_id(), |(t, _)| t)
    }

    fn new_span_id(&self) -> SpanId {
        NEXT_IDS
            .with(Cell::get)
            .map_or_else(|| self.0.new_span_id(), |(_, s)| s)
    }
}

/// How long one export may take.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// The span exporter; shut down (flushing what is queued) when dropped.
pub struct Spans {
    provider: Option<SdkTracerProvider>,
    tracer: Tracer,
}

impl std::fmt::Debug for Spans {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spans").finish_non_exhaustive()
    }
}

/// One finished request, as its span says it.
#[derive(Debug)]
pub struct RequestSpan<'a> {
    pub trace: &'a TraceContext,
    pub name: &'a str,
    pub started: SystemTime,
    pub ended: SystemTime,
    pub attributes: Vec<KeyValue>,
    /// The request was refused or failed (status 5xx, or a rejection).
    pub error: bool,
}

impl Spans {
    pub fn start(config: &portcullis_config::Otlp) -> Result<Self, String> {
        let client = Collector::new(config.ca.as_deref())?;
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(Protocol::HttpJson)
            .with_endpoint(config.endpoint.to_string())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| e.to_string())?;
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_id_generator(RequestIds::default())
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        let tracer = provider.tracer("portcullis");
        Ok(Self {
            provider: Some(provider),
            tracer,
        })
    }

    /// Queues the span of one request (sampled traces only).
    pub fn record(&self, span: RequestSpan<'_>) {
        let ids = span.trace.ids();
        if !ids.sampled {
            return;
        }
        let (Ok(trace_id), Ok(span_id)) = (
            TraceId::from_hex(ids.trace_id),
            SpanId::from_hex(ids.span_id),
        ) else {
            return;
        };
        let parent = match ids.parent_id.map(SpanId::from_hex) {
            Some(Ok(parent)) => Context::new().with_remote_span_context(SpanContext::new(
                trace_id,
                parent,
                TraceFlags::SAMPLED,
                true,
                TraceState::default(),
            )),
            _ => Context::new(),
        };
        let builder = self
            .tracer
            .span_builder(span.name.to_owned())
            .with_kind(SpanKind::Server)
            .with_start_time(span.started)
            .with_attributes(span.attributes);
        NEXT_IDS.with(|n| n.set(Some((trace_id, span_id))));
        let mut built = self.tracer.build_with_context(builder, &parent);
        NEXT_IDS.with(|n| n.set(None));
        if span.error {
            built.set_status(Status::error(""));
        }
        built.end_with_timestamp(span.ended);
    }
}

impl Drop for Spans {
    fn drop(&mut self) {
        // Flushing blocks until the last export ends: never on a runtime thread.
        if let Some(provider) = self.provider.take() {
            let _ = std::thread::Builder::new()
                .name("otlp-shutdown".into())
                .spawn(move || {
                    let _ = provider.shutdown();
                });
        }
    }
}

/// The HTTP client the exporter posts with: the gateway's own (rustls,
/// the configured anchors), run on a runtime of its own because the SDK
/// exports from a thread outside any runtime.
struct Collector {
    rt: tokio::runtime::Runtime,
    client: crate::events::spool::CollectorClient,
}

impl std::fmt::Debug for Collector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Collector {
    fn new(ca: Option<&std::path::Path>) -> Result<Self, String> {
        Ok(Self {
            rt: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?,
            client: crate::events::spool::collector_client(ca)?,
        })
    }
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for Collector {
    async fn send_bytes(
        &self,
        request: http::Request<Bytes>,
    ) -> Result<http::Response<Bytes>, opentelemetry_http::HttpError> {
        use http_body_util::BodyExt;
        let client = self.client.clone();
        let request = request.map(http_body_util::Full::new);
        self.rt.block_on(async move {
            let response = tokio::time::timeout(EXPORT_TIMEOUT, client.request(request))
                .await
                .map_err(|_| "timed out")??;
            let (head, body) = response.into_parts();
            let body = http_body_util::Limited::new(body, 64 * 1024)
                .collect()
                .await?
                .to_bytes();
            Ok(http::Response::from_parts(head, body))
        })
    }
}

//! The event spool and its shippers (OPS-01): security events are appended
//! to a local spool (segment files, fsync'd once per batch) before anything
//! else, and each remote sink (syslog, HTTP collector) ships from it on its
//! own thread, in spool order, at least once: its cursor (the last event it
//! delivered) is persisted only after delivery, and after a failure it
//! starts again from the cursor. A slow or dead sink never blocks requests;
//! it only lets the spool grow. Over `max_bytes` the oldest segments lose
//! their low-severity events first, then whole segments go; every drop is
//! itself an event.
//!
//! Lines are `<seq>\t<severity id>\t<event JSON>`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Largest segment before the writer starts a new one.
const SEGMENT_BYTES: u64 = 1024 * 1024;
/// Severity id from which events are kept while low-severity ones are dropped.
const KEEP_FROM_SEVERITY: u8 = 4;

/// One spooled event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spooled {
    pub seq: u64,
    pub severity: u8,
    pub json: String,
}

fn segment_name(first_seq: u64) -> String {
    format!("seg-{first_seq:020}.jsonl")
}

/// Segments by first seq, oldest first.
fn segments(dir: &Path) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let seq = name
                .strip_prefix("seg-")?
                .strip_suffix(".jsonl")?
                .parse()
                .ok()?;
            Some((seq, e.path()))
        })
        .collect();
    v.sort_unstable();
    Ok(v)
}

/// The complete lines of a segment (a line still being written is skipped).
fn read_segment(path: &Path) -> std::io::Result<Vec<Spooled>> {
    let mut text = String::new();
    std::fs::File::open(path)?.read_to_string(&mut text)?;
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    Ok(complete
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            Some(Spooled {
                seq: parts.next()?.parse().ok()?,
                severity: parts.next()?.parse().ok()?,
                json: parts.next()?.to_owned(),
            })
        })
        .collect())
}

/// Up to `max` events after `cursor`, in order.
pub fn read_after(dir: &Path, cursor: u64, max: usize) -> std::io::Result<Vec<Spooled>> {
    let segs = segments(dir)?;
    let mut out = Vec::new();
    for (i, (_, path)) in segs.iter().enumerate() {
        // Skip segments that end before the cursor (the next one starts at or before it).
        if segs.get(i + 1).is_some_and(|(next, _)| *next <= cursor + 1) {
            continue;
        }
        let lines = match read_segment(path) {
            Ok(l) => l,
            // Dropped or collected meanwhile: what it held is gone or delivered.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        out.extend(
            lines
                .into_iter()
                .filter(|s| s.seq > cursor)
                .take(max - out.len()),
        );
        if out.len() >= max {
            break;
        }
    }
    Ok(out)
}

/// Events in the spool that `sinks` have not all delivered yet (the
/// largest backlog of any sink).
pub fn depth(dir: &Path, sinks: &[String]) -> u64 {
    let last = segments(dir)
        .ok()
        .and_then(|s| s.last().map(|(_, p)| p.clone()))
        .and_then(|p| read_segment(&p).ok())
        .and_then(|l| l.last().map(|s| s.seq))
        .unwrap_or(0);
    sinks
        .iter()
        .map(|s| last.saturating_sub(read_cursor(dir, s)))
        .max()
        .unwrap_or(0)
}

fn cursor_path(dir: &Path, sink: &str) -> PathBuf {
    dir.join(format!("cursor-{sink}"))
}

pub fn read_cursor(dir: &Path, sink: &str) -> u64 {
    std::fs::read_to_string(cursor_path(dir, sink))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// Persists a sink's cursor (write, fsync, rename).
pub fn write_cursor(dir: &Path, sink: &str, seq: u64) -> std::io::Result<()> {
    let tmp = dir.join(format!(".cursor-{sink}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(seq.to_string().as_bytes())?;
    f.sync_all()?;
    std::fs::rename(tmp, cursor_path(dir, sink))
}

/// The writer side: used by the event writer thread only.
pub struct SpoolWriter {
    dir: PathBuf,
    max_bytes: u64,
    sinks: Vec<String>,
    next_seq: u64,
    current: std::fs::File,
    current_len: u64,
}

impl std::fmt::Debug for SpoolWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolWriter")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl SpoolWriter {
    /// Opens (creating, mode 0700) the spool; carries on after the last event.
    pub fn open(dir: &Path, max_bytes: u64, sinks: Vec<String>) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let segs = segments(dir)?;
        let next_seq = match segs.last() {
            Some((first, path)) => read_segment(path)?.last().map_or(*first, |s| s.seq + 1),
            None => 1,
        };
        let path = match segs.last() {
            Some((_, p)) => p.clone(),
            None => dir.join(segment_name(next_seq)),
        };
        let current = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)?;
        let current_len = current.metadata()?.len();
        Ok(Self {
            dir: dir.to_owned(),
            max_bytes,
            sinks,
            next_seq,
            current,
            current_len,
        })
    }

    /// Appends a batch and makes it durable (one fsync).
    pub fn append(&mut self, batch: &[(u8, String)]) -> std::io::Result<()> {
        if self.current_len >= SEGMENT_BYTES {
            self.current.sync_data()?;
            self.current = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.dir.join(segment_name(self.next_seq)))?;
            self.current_len = 0;
        }
        let mut buf = String::new();
        for (severity, json) in batch {
            buf.push_str(&format!("{}\t{severity}\t{json}\n", self.next_seq));
            self.next_seq += 1;
        }
        self.current.write_all(buf.as_bytes())?;
        self.current_len += buf.len() as u64;
        self.current.sync_data()
    }

    /// Removes what every sink delivered; over the size bound, drops the
    /// oldest undelivered events, low severity first. Returns how many
    /// undelivered events were dropped.
    pub fn collect(&mut self) -> std::io::Result<u64> {
        let delivered = self
            .sinks
            .iter()
            .map(|s| read_cursor(&self.dir, s))
            .min()
            .unwrap_or(u64::MAX);
        let mut segs = segments(&self.dir)?;
        // The newest segment is being written: never touched here.
        segs.pop();
        let mut kept = Vec::new();
        for (i, (first, path)) in segs.iter().enumerate() {
            let last = segs.get(i + 1).map_or(self.next_seq, |(n, _)| *n) - 1;
            if last <= delivered {
                std::fs::remove_file(path)?;
            } else {
                kept.push((*first, path.clone()));
            }
        }
        let mut dropped = 0;
        let total = |dir: &Path| -> u64 {
            segments(dir)
                .unwrap_or_default()
                .iter()
                .filter_map(|(_, p)| std::fs::metadata(p).ok())
                .map(|m| m.len())
                .sum()
        };
        // First pass: the oldest segments keep only their high-severity events.
        for (first, path) in &kept {
            if total(&self.dir) <= self.max_bytes {
                return Ok(dropped);
            }
            let lines = read_segment(path)?;
            let keep: Vec<&Spooled> = lines
                .iter()
                .filter(|s| s.severity >= KEEP_FROM_SEVERITY || s.seq <= delivered)
                .collect();
            dropped += (lines.len() - keep.len()) as u64;
            let tmp = self.dir.join(format!(".{}.tmp", segment_name(*first)));
            let mut f = std::fs::File::create(&tmp)?;
            for s in keep {
                writeln!(f, "{}\t{}\t{}", s.seq, s.severity, s.json)?;
            }
            f.sync_all()?;
            std::fs::rename(tmp, path)?;
        }
        // Second pass: whole segments, oldest first.
        for (_, path) in &kept {
            if total(&self.dir) <= self.max_bytes {
                break;
            }
            dropped += read_segment(path)?
                .iter()
                .filter(|s| s.seq > delivered)
                .count() as u64;
            std::fs::remove_file(path)?;
        }
        Ok(dropped)
    }
}

/// Where a shipper delivers.
pub trait Sink: Send {
    fn name(&self) -> &'static str;
    fn batch(&self) -> usize;
    /// Delivers events; returns the seq up to which delivery is certain (a
    /// stream sink confirms only what was written a while ago on a live
    /// connection), or an error after which shipping restarts from the cursor.
    fn send(&mut self, events: &[Spooled]) -> Result<Option<u64>, String>;
    /// Called when there is nothing new: lets a stream sink confirm.
    fn idle(&mut self) -> Result<Option<u64>, String> {
        Ok(None)
    }
}

/// Ships one sink from the spool until `stop` is set. `report` emits the
/// operational event (kind, severity, message) when the sink goes down or
/// comes back.
pub fn ship(
    dir: &Path,
    mut sink: Box<dyn Sink>,
    report: &dyn Fn(&'static str, crate::rejection::Severity, &str),
    stop: &std::sync::atomic::AtomicBool,
) {
    use crate::rejection::Severity;
    use std::sync::atomic::Ordering;
    let name = sink.name();
    let mut cursor = read_cursor(dir, name);
    // What was handed to the sink but not yet confirmed.
    let mut sent = cursor;
    let mut backoff = Duration::from_millis(100);
    let mut down_since: Option<Instant> = None;
    while !stop.load(Ordering::Relaxed) {
        let batch = match read_after(dir, sent, sink.batch()) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(sink = name, error = %e, "cannot read the event spool");
                std::thread::sleep(Duration::from_secs(1));
                continue;
            }
        };
        let outcome = if batch.is_empty() {
            sink.idle()
        } else {
            sink.send(&batch).inspect(|_| {
                sent = batch.last().map_or(sent, |s| s.seq);
            })
        };
        match outcome {
            Ok(confirmed) => {
                if let Some(since) = down_since.take() {
                    report(
                        "event-sink-recovered",
                        Severity::Informational,
                        &format!(
                            "event sink `{name}` reachable again after {} s; shipping what it missed",
                            since.elapsed().as_secs()
                        ),
                    );
                }
                backoff = Duration::from_millis(100);
                if let Some(c) = confirmed.filter(|&c| c > cursor) {
                    cursor = c;
                    if let Err(e) = write_cursor(dir, name, cursor) {
                        tracing::error!(sink = name, error = %e, "cannot persist the sink cursor");
                    }
                }
                if batch.is_empty() {
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
            Err(e) => {
                if down_since.is_none() {
                    down_since = Some(Instant::now());
                    tracing::error!(sink = name, error = %e, "event sink unreachable; events stay in the spool");
                    report(
                        "event-sink-unavailable",
                        Severity::High,
                        &format!(
                            "event sink `{name}` unreachable; events stay in the spool until it answers"
                        ),
                    );
                }
                // Everything not confirmed is sent again.
                sent = cursor;
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// RFC 5424 syslog over TCP with RFC 6587 octet counting, optionally TLS.
/// TCP has no application acknowledgement: an event counts as delivered
/// once it was written more than [`SyslogSink::CONFIRM_AFTER`] ago on a
/// connection still open; a connection found closed sends everything
/// unconfirmed again (receivers can drop repeats by the `seq` parameter).
pub struct SyslogSink {
    address: String,
    host: String,
    tls: Option<std::sync::Arc<rustls::ClientConfig>>,
    conn: Option<Conn>,
    /// `(last seq of a write, when)` not yet confirmed.
    pending: std::collections::VecDeque<(u64, Instant)>,
}

enum Conn {
    Plain(std::net::TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>),
}

impl Conn {
    fn tcp(&self) -> &std::net::TcpStream {
        match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => &s.sock,
        }
    }
    fn write_all(&mut self, b: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => s.write_all(b).and_then(|()| s.flush()),
            Conn::Tls(s) => s.write_all(b).and_then(|()| s.flush()),
        }
    }
    /// Whether the peer closed the connection (receivers never send).
    fn closed(&self) -> bool {
        let tcp = self.tcp();
        if tcp.set_nonblocking(true).is_err() {
            return true;
        }
        let mut b = [0u8; 1];
        let closed = match tcp.peek(&mut b) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        let _ = tcp.set_nonblocking(false);
        closed
    }
}

impl SyslogSink {
    pub const CONFIRM_AFTER: Duration = Duration::from_secs(2);

    pub fn new(config: &portcullis_config::Syslog) -> Result<Self, String> {
        let tls = config
            .ca
            .as_ref()
            .map(|ca| crate::tls::client_config(ca).map(std::sync::Arc::new))
            .transpose()?;
        Ok(Self {
            address: config.address.clone(),
            host: config.host.clone(),
            tls,
            conn: None,
            pending: std::collections::VecDeque::new(),
        })
    }

    fn connect(&self) -> Result<Conn, String> {
        use std::net::ToSocketAddrs;
        let addr = self
            .address
            .to_socket_addrs()
            .map_err(|e| e.to_string())?
            .next()
            .ok_or("no address")?;
        let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
            .map_err(|e| e.to_string())?;
        tcp.set_write_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        Ok(match &self.tls {
            None => Conn::Plain(tcp),
            Some(config) => {
                let name = rustls_pki_types::ServerName::try_from(self.host.clone())
                    .map_err(|e| e.to_string())?;
                let c = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| e.to_string())?;
                Conn::Tls(Box::new(rustls::StreamOwned::new(c, tcp)))
            }
        })
    }

    /// Confirms writes old enough on a connection still open.
    fn confirm(&mut self) -> Result<Option<u64>, String> {
        let Some(conn) = &self.conn else {
            return Ok(None);
        };
        if conn.closed() {
            self.conn = None;
            self.pending.clear();
            return Err("the receiver closed the connection".into());
        }
        let mut confirmed = None;
        while let Some(&(seq, at)) = self.pending.front() {
            if at.elapsed() < Self::CONFIRM_AFTER {
                break;
            }
            confirmed = Some(seq);
            self.pending.pop_front();
        }
        Ok(confirmed)
    }
}

fn syslog_severity(severity_id: u8) -> u8 {
    match severity_id {
        4.. => 4, // warning
        3 => 5,   // notice
        _ => 6,   // informational
    }
}

impl Sink for SyslogSink {
    fn name(&self) -> &'static str {
        "syslog"
    }

    fn batch(&self) -> usize {
        256
    }

    fn send(&mut self, events: &[Spooled]) -> Result<Option<u64>, String> {
        let confirmed = self.confirm()?;
        if self.conn.is_none() {
            self.conn = Some(self.connect()?);
        }
        let mut frames = Vec::new();
        let now = time::OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| "-".into());
        for e in events {
            // Facility 4 (security/authorization).
            let pri = 4 * 8 + syslog_severity(e.severity);
            let msg = format!(
                "<{pri}>1 {now} - portcullis - security-event [portcullis@32473 seq=\"{}\"] {}",
                e.seq, e.json
            );
            frames.extend_from_slice(format!("{} {msg}", msg.len()).as_bytes());
        }
        let conn = self.conn.as_mut().expect("connected above");
        if let Err(e) = conn.write_all(&frames) {
            self.conn = None;
            self.pending.clear();
            return Err(e.to_string());
        }
        if let Some(last) = events.last() {
            self.pending.push_back((last.seq, Instant::now()));
        }
        Ok(confirmed)
    }

    fn idle(&mut self) -> Result<Option<u64>, String> {
        self.confirm()
    }
}

/// An HTTP collector: each batch is one POST of a JSON array of
/// `{"seq": n, "event": {…}}`; a 2xx answer is the acknowledgement.
pub struct HttpSink {
    url: http::Uri,
    batch: usize,
    rt: tokio::runtime::Runtime,
    client: CollectorClient,
}

/// An HTTP client for a collector (events, spans).
pub type CollectorClient = hyper_util::client::legacy::Client<
    hyper_rustls::HttpsConnector<hyper_util::client::legacy::connect::HttpConnector>,
    http_body_util::Full<bytes::Bytes>,
>;

/// A collector's client: HTTPS trusting only `ca`, or plain HTTP where the
/// config allowed it (loopback, or `dangerous_plaintext`).
pub fn collector_client(ca: Option<&std::path::Path>) -> Result<CollectorClient, String> {
    Ok(match ca {
        Some(ca) => crate::tls::https_client(ca, Duration::from_secs(2))?,
        None => {
            let mut http = hyper_util::client::legacy::connect::HttpConnector::new();
            http.set_connect_timeout(Some(Duration::from_secs(2)));
            let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
                crate::tls::provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls)
                .https_or_http()
                .enable_http1()
                .wrap_connector(http);
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build(connector)
        }
    })
}

impl HttpSink {
    pub fn new(config: &portcullis_config::Collector) -> Result<Self, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let client = collector_client(config.ca.as_deref())?;
        Ok(Self {
            url: config.url.clone(),
            batch: config.batch,
            rt,
            client,
        })
    }
}

impl Sink for HttpSink {
    fn name(&self) -> &'static str {
        "http"
    }

    fn batch(&self) -> usize {
        self.batch
    }

    fn send(&mut self, events: &[Spooled]) -> Result<Option<u64>, String> {
        let mut body = String::from("[");
        for (i, e) in events.iter().enumerate() {
            if i > 0 {
                body.push(',');
            }
            body.push_str(&format!("{{\"seq\":{},\"event\":{}}}", e.seq, e.json));
        }
        body.push(']');
        let req = http::Request::post(self.url.clone())
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(http_body_util::Full::new(bytes::Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let client = self.client.clone();
        let status = self.rt.block_on(async move {
            tokio::time::timeout(Duration::from_secs(5), client.request(req))
                .await
                .map_err(|_| "timed out".to_owned())?
                .map(|r| r.status())
                .map_err(|e| e.to_string())
        })?;
        if status.is_success() {
            Ok(events.last().map(|e| e.seq))
        } else {
            Err(format!("collector answered {status}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_keeps_order_survives_reopening_and_drops_low_severity_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = SpoolWriter::open(dir.path(), 1024 * 1024, vec!["a".into()]).unwrap();
        let big = "x".repeat(2000);
        for n in 0..1200u64 {
            let sev = if n % 4 == 0 { 4 } else { 1 };
            w.append(&[(sev, format!("{{\"n\":{n},\"pad\":\"{big}\"}}"))])
                .unwrap();
        }
        drop(w);
        // Reopened: numbering carries on.
        let mut w = SpoolWriter::open(dir.path(), 1024 * 1024, vec!["a".into()]).unwrap();
        w.append(&[(1, "{\"n\":1200}".into())]).unwrap();
        let all = read_after(dir.path(), 0, 10_000).unwrap();
        assert_eq!(all.len(), 1201);
        assert!(all.windows(2).all(|p| p[1].seq == p[0].seq + 1));
        assert_eq!(read_after(dir.path(), 1199, 10).unwrap().len(), 2);
        // Over the bound with nothing delivered: low-severity events go first.
        let dropped = w.collect().unwrap();
        assert!(dropped > 0);
        let left = read_after(dir.path(), 0, 10_000).unwrap();
        assert_eq!(left.len() as u64 + dropped, 1201);
        let high = left.iter().filter(|s| s.severity >= 4).count();
        assert_eq!(high, 300, "every high-severity event is still there");
        assert_eq!(depth(dir.path(), &["a".into()]), 1201);
        // Delivered segments are collected.
        write_cursor(dir.path(), "a", 1201).unwrap();
        assert_eq!(depth(dir.path(), &["a".into()]), 0);
        w.collect().unwrap();
        assert_eq!(segments(dir.path()).unwrap().len(), 1);
    }
}

//! The access log (OPS-01): one JSON line per request on a data-plane
//! listener, answered or refused: when, its correlation and trace ids,
//! listener, client, method and path, API, operation, application, status,
//! bytes sent, the time it took in all, at the upstream and by stage
//! (when each stage ended), and the target that served it.
//!
//! Never a credential: no header, no query string and no body is written,
//! and the path is the operation's template when one of its path
//! parameters is classified (the same rule as security events). Lines are
//! written by a thread of their own from a bounded queue, so a slow disk
//! never holds a request; what the queue cannot take is counted and the
//! count written as a line of its own.

use serde::Serialize;
use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};

/// Lines queued for the writer at most.
const QUEUE: usize = 65_536;

/// One request as the access log tells it.
#[derive(Debug, Serialize)]
pub struct AccessEntry {
    /// Milliseconds since the Unix epoch, when the answer was ready.
    pub time: u64,
    pub correlation_id: String,
    pub trace_id: Option<String>,
    pub listener: String,
    pub client: std::net::IpAddr,
    pub method: String,
    pub path: String,
    pub api: Option<String>,
    pub operation: Option<String>,
    pub application: Option<String>,
    pub status: u16,
    /// The refusal's problem type, when the gateway answered itself.
    pub rejection: Option<&'static str>,
    /// Body bytes sent, when known before sending (not for a stream).
    pub bytes: Option<u64>,
    pub duration_us: u64,
    /// Time to the upstream's answer head, all tries included.
    pub upstream_us: Option<u64>,
    pub upstream_target: Option<String>,
    /// When each stage the request reached ended, µs after it began.
    pub stages_us: crate::pipeline::call::Stages,
}

/// Where access-log lines go.
#[derive(Debug)]
pub struct AccessLog {
    tx: mpsc::SyncSender<AccessEntry>,
    lost: Arc<AtomicU64>,
}

impl AccessLog {
    /// Opens the file (0600, rotated like the events file) and starts the writer.
    pub fn start(config: &portcullis_config::AccessLog) -> std::io::Result<Self> {
        let mut out: Vec<Box<dyn Write + Send>> = Vec::new();
        if let Some(path) = &config.file {
            out.push(Box::new(super::RotatingFile::open(
                path,
                config.file_max_bytes,
                config.file_keep,
            )?));
        }
        if config.stdout {
            out.push(Box::new(std::io::BufWriter::new(std::io::stdout())));
        }
        let (tx, rx) = mpsc::sync_channel::<AccessEntry>(QUEUE);
        let lost = Arc::new(AtomicU64::new(0));
        let writer_lost = lost.clone();
        std::thread::Builder::new()
            .name("portcullis-access-log".into())
            .spawn(move || write_lines(&rx, &writer_lost, &mut out))?;
        Ok(Self { tx, lost })
    }

    /// Never blocks: a full queue counts the line as lost.
    pub fn record(&self, entry: AccessEntry) {
        if self.tx.try_send(entry).is_err() {
            self.lost.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn write_lines(
    rx: &mpsc::Receiver<AccessEntry>,
    lost: &AtomicU64,
    out: &mut [Box<dyn Write + Send>],
) {
    while let Ok(first) = rx.recv() {
        let mut lines = Vec::with_capacity(64);
        for entry in std::iter::once(first).chain(rx.try_iter().take(4095)) {
            if serde_json::to_writer(&mut lines, &entry).is_ok() {
                lines.push(b'\n');
            }
        }
        let dropped = lost.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let _ = writeln!(lines, "{{\"access_log_lines_lost\":{dropped}}}");
        }
        for w in out.iter_mut() {
            let _ = w.write_all(&lines);
            let _ = w.flush();
        }
        // As the events writer: let lines gather instead of waking per request.
        std::thread::sleep(super::WRITER_PAUSE);
    }
}

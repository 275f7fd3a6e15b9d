//! Security events (OPS-01): one structured event per rejection, shaped after
//! OCSF (see [`ocsf`]), written by a writer thread to the spool (then shipped to
//! syslog and HTTP collectors, see [`crate::events::spool`]) and as JSON lines to a
//! file and/or standard output, so a slow disk or sink never blocks a
//! request. Events carry the correlation id (DATA-04) and never a header
//! value, body or query string, so secrets cannot leak into them.

pub mod access;
mod ocsf;
pub mod otlp;
pub mod spool;
pub mod traffic;

pub use ocsf::{
    Api, Endpoint, EventContext, HttpRequest, HttpResponse, Metadata, Product, SecurityEvent, Url,
};

use crate::rejection::Severity;
use std::collections::HashMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use tokio::sync::broadcast;

/// Where events go. Cloning shares the same writer.
#[derive(Debug, Clone)]
pub struct EventSink {
    writer: Option<mpsc::SyncSender<Queued>>,
    tap: broadcast::Sender<SecurityEvent>,
    /// Events the writer's queue could not take (a stalled disk): counted,
    /// and reported as an event once the writer catches up.
    lost: Arc<AtomicU64>,
    /// Stops the shippers when the last owner goes (shippers hold a copy without it).
    _shippers: Option<Arc<StopOnDrop>>,
}

#[derive(Debug)]
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Events queued for the writer at most; beyond, they are counted as lost.
const QUEUE: usize = 65_536;

/// One event on its way to the writer: its severity, what makes it the
/// same as another (reason, client, path), and the event, turned into its
/// JSON line by the writer only if it is written (a flood's copies are not).
struct Queued {
    severity: u8,
    key: String,
    event: Box<SecurityEvent>,
}

/// Identical events (same reason, client and path) within one window are
/// written once, then summed up in one `events-collapsed` event, so a flood
/// of one kind cannot push other events (High ones included) out of the
/// bounded spool or fill the disk. The live feed still sees every event.
const FLOOD_WINDOW: std::time::Duration = std::time::Duration::from_secs(1);
/// Pause of the writer thread after each batch it writes.
const WRITER_PAUSE: std::time::Duration = std::time::Duration::from_millis(5);

/// Distinct keys followed per window; beyond, events pass uncollapsed.
const FLOOD_KEYS: usize = 4096;

#[derive(Default)]
struct Floods {
    window_start: Option<std::time::Instant>,
    /// key → (severity, events withheld this window)
    seen: HashMap<String, (u8, u64)>,
}

impl Floods {
    /// The event to write, unless one like it was written this window.
    fn admit(&mut self, q: Queued) -> Vec<(u8, String)> {
        let start = *self
            .window_start
            .get_or_insert_with(std::time::Instant::now);
        let mut out = Vec::new();
        if start.elapsed() >= FLOOD_WINDOW {
            out = self.summaries();
            self.window_start = Some(std::time::Instant::now());
        }
        match self.seen.get_mut(&q.key) {
            Some((_, withheld)) => *withheld += 1,
            None => {
                if self.seen.len() < FLOOD_KEYS {
                    self.seen.insert(q.key, (q.severity, 0));
                }
                if let Ok(line) = serde_json::to_string(&q.event) {
                    out.push((q.severity, line));
                }
            }
        }
        out
    }

    /// One counted event per key whose copies were withheld, once the
    /// window is over; the window then starts afresh.
    fn summaries(&mut self) -> Vec<(u8, String)> {
        let Some(start) = self.window_start else {
            return Vec::new();
        };
        if start.elapsed() < FLOOD_WINDOW {
            return Vec::new();
        }
        self.window_start = None;
        let mut out = Vec::new();
        for (key, (severity, withheld)) in self.seen.drain() {
            if withheld == 0 {
                continue;
            }
            let reason = key.split(' ').next().unwrap_or_default();
            let mut e = SecurityEvent::operational(
                "events-collapsed",
                Severity::Low,
                &format!(
                    "{withheld} more `{reason}` events like the one before from the same client and path within 1 s"
                ),
            );
            // A summary is as severe as what it stands for.
            e.severity_id = severity;
            let name = match severity {
                4 => Severity::High,
                3 => Severity::Medium,
                2 => Severity::Low,
                _ => Severity::Informational,
            }
            .name();
            name.clone_into(&mut e.severity);
            if let Ok(line) = serde_json::to_string(&e) {
                out.push((severity, line));
            }
        }
        out
    }
}

/// The events file: created 0600, rotated at a size bound (`file.1` is the
/// newest rotated file), with a bounded number of rotated files kept.
struct RotatingFile {
    path: std::path::PathBuf,
    file: std::io::BufWriter<std::fs::File>,
    size: u64,
    max: u64,
    keep: u32,
}

impl RotatingFile {
    fn open(path: &std::path::Path, max: u64, keep: u32) -> std::io::Result<Self> {
        let file = Self::create(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file: std::io::BufWriter::new(file),
            size,
            max,
            keep,
        })
    }

    fn create(path: &std::path::Path) -> std::io::Result<std::fs::File> {
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        options.open(path)
    }

    fn rotated(&self, n: u32) -> std::path::PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            let _ = std::fs::remove_file(self.rotated(self.keep));
            for n in (1..self.keep).rev() {
                let _ = std::fs::rename(self.rotated(n), self.rotated(n + 1));
            }
            std::fs::rename(&self.path, self.rotated(1))?;
        }
        self.file = std::io::BufWriter::new(Self::create(&self.path)?);
        self.size = 0;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.size > 0 && self.size + buf.len() as u64 > self.max {
            self.rotate()?;
        }
        let n = self.file.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// The remote sinks configured (syslog, HTTP), each shipped from the spool.
fn remote_sinks(config: &portcullis_config::Events) -> std::io::Result<Vec<Box<dyn spool::Sink>>> {
    let mut sinks: Vec<Box<dyn spool::Sink>> = Vec::new();
    if let Some(s) = &config.syslog {
        sinks.push(Box::new(
            spool::SyslogSink::new(s).map_err(std::io::Error::other)?,
        ));
    }
    if let Some(h) = &config.http {
        sinks.push(Box::new(
            spool::HttpSink::new(h).map_err(std::io::Error::other)?,
        ));
    }
    Ok(sinks)
}

/// The writer thread: batches what is queued, folds floods into summaries,
/// says how many events were lost, appends to the spool (collecting it
/// once a second) and writes every line to the file and stdout.
fn write_events(
    rx: &mpsc::Receiver<Queued>,
    writer_lost: &AtomicU64,
    mut spool: Option<&mut spool::SpoolWriter>,
    out: &mut [Box<dyn Write + Send>],
) {
    let mut last_collect = std::time::Instant::now();
    let mut dropped = 0u64;
    let mut floods = Floods::default();
    loop {
        let mut batch = match rx.recv_timeout(FLOOD_WINDOW) {
            Ok(first) => floods.admit(first),
            Err(mpsc::RecvTimeoutError::Timeout) => Vec::new(),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        };
        for queued in rx.try_iter() {
            batch.extend(floods.admit(queued));
        }
        batch.extend(floods.summaries());
        if batch.is_empty() {
            // Everything received was a flood's withheld copy: pause all
            // the same, or every copy wakes this thread.
            std::thread::sleep(WRITER_PAUSE);
            continue;
        }
        dropped += writer_lost.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let e = SecurityEvent::operational(
                "events-dropped",
                Severity::High,
                &format!(
                    "{dropped} security events were dropped (spool over its size bound, or the writer fell behind)"
                ),
            );
            if let Ok(line) = serde_json::to_string(&e) {
                batch.push((e.severity_id, line));
            }
            dropped = 0;
        }
        if let Some(spool) = spool.as_deref_mut() {
            if let Err(e) = spool.append(&batch) {
                tracing::error!(error = %e, "cannot append to the event spool");
            }
            if last_collect.elapsed() >= std::time::Duration::from_secs(1) {
                last_collect = std::time::Instant::now();
                match spool.collect() {
                    Ok(n) => dropped += n,
                    Err(e) => tracing::error!(error = %e, "cannot collect the event spool"),
                }
            }
        }
        for w in out.iter_mut() {
            for (_, l) in &batch {
                let _ = w.write_all(l.as_bytes());
                let _ = w.write_all(b"\n");
            }
            let _ = w.flush();
        }
        // Let the queue fill for a moment instead of being woken by every
        // event: under a flood of rejections each wake-up was a context
        // switch and a contended lock for the request path (issue 20,
        // S9 profile). The queue holds far more than arrives meanwhile.
        std::thread::sleep(WRITER_PAUSE);
    }
}

impl EventSink {
    /// Starts the writer thread for the configured destinations: the spool
    /// first (when remote sinks are configured), then the file and stdout;
    /// and one shipper thread per remote sink.
    pub fn start(config: &portcullis_config::Events) -> std::io::Result<Self> {
        let (tap, _) = broadcast::channel(1024);
        let lost = Arc::new(AtomicU64::new(0));
        let sinks = remote_sinks(config)?;
        let mut spool = config
            .spool
            .as_ref()
            .map(|s| {
                spool::SpoolWriter::open(
                    &s.dir,
                    s.max_bytes,
                    sinks.iter().map(|k| k.name().to_owned()).collect(),
                )
            })
            .transpose()?;
        if !config.stdout && config.file.is_none() && spool.is_none() {
            return Ok(Self {
                writer: None,
                tap,
                lost,
                _shippers: None,
            });
        }
        let mut out: Vec<Box<dyn Write + Send>> = Vec::new();
        if let Some(path) = &config.file {
            out.push(Box::new(RotatingFile::open(
                path,
                config.file_max_bytes.max(1024 * 1024),
                config.file_keep,
            )?));
        }
        if config.stdout {
            out.push(Box::new(std::io::BufWriter::new(std::io::stdout())));
        }
        let (tx, rx) = mpsc::sync_channel::<Queued>(QUEUE);
        let writer_lost = lost.clone();
        std::thread::Builder::new()
            .name("portcullis-events".into())
            .spawn(move || write_events(&rx, &writer_lost, spool.as_mut(), &mut out))?;
        let stop = Arc::new(AtomicBool::new(false));
        let this = Self {
            writer: Some(tx),
            tap,
            lost,
            _shippers: (!sinks.is_empty()).then(|| Arc::new(StopOnDrop(stop.clone()))),
        };
        if let Some(s) = &config.spool {
            for sink in sinks {
                let shipper_events = Self {
                    _shippers: None,
                    ..this.clone()
                };
                let (dir, stop) = (s.dir.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("portcullis-ship-{}", sink.name()))
                    .spawn(move || {
                        let report = |kind, severity, message: &str| {
                            shipper_events
                                .emit(SecurityEvent::operational(kind, severity, message));
                        };
                        spool::ship(&dir, sink, &report, &stop);
                    })?;
            }
        }
        Ok(this)
    }

    /// Never blocks: a full queue counts the event as lost (and says so later).
    pub fn emit(&self, event: SecurityEvent) {
        if self.tap.receiver_count() > 0 {
            let _ = self.tap.send(event.clone());
        }
        if let Some(w) = &self.writer {
            let key = format!(
                "{} {} {}",
                event.status_code, event.src_endpoint.ip, event.http_request.url.path
            );
            match w.try_send(Queued {
                severity: event.severity_id,
                key,
                event: Box::new(event),
            }) {
                Ok(()) => {}
                Err(mpsc::TrySendError::Full(_)) => {
                    self.lost.fetch_add(1, Ordering::Relaxed);
                }
                Err(mpsc::TrySendError::Disconnected(_)) => {
                    tracing::error!("security event writer stopped; event not written");
                }
            }
        }
    }

    /// A live feed of events (tests, and later the admin plane).
    pub fn subscribe(&self) -> broadcast::Receiver<SecurityEvent> {
        self.tap.subscribe()
    }
}

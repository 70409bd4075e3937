//! The proxy's error.log and access.log sink: lines in nginx's formats
//! (`nginx_model::logs`), appended to the files the configuration names, as
//! nginx does (each `access_log` file once, written by every request whose
//! location, server or http level names it), and kept in memory for readers in the same process (the
//! harness) only as far as the retention allows.

use nginx_model::logs::AccessEntry;
use nginx_model::resolve::AccessLogSpec;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use labkit::events::Retention;
use std::collections::VecDeque;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

/// error.log and access.log: appended to files if configured, and the most
/// recent lines kept in memory by the retention.
#[derive(Clone)]
pub struct Logs {
    inner: Arc<Mutex<LogsInner>>,
    /// Woken at each access line, for [`Logs::wait_access`].
    access_written: Arc<tokio::sync::Notify>,
}

struct LogsInner {
    retention: Retention,
    errors: VecDeque<String>,
    access: VecDeque<AccessEntry>,
    /// Access lines written since the start (the retention drops old ones
    /// from `access`).
    access_total: usize,
    error_file: Option<File>,
    /// Each access log file, by its path as nginx.conf writes it.
    access_files: Vec<(String, File)>,
    /// The paths opened, for a reopen (SIGUSR1).
    error_path: Option<PathBuf>,
    access_paths: Vec<(String, PathBuf)>,
}

impl Logs {
    /// `access`: each access log's path as written and the file it opens.
    pub fn new(error_path: Option<PathBuf>, access: Vec<(String, PathBuf)>, retention: Retention) -> std::io::Result<Logs> {
        let open = |p: &PathBuf| OpenOptions::new().create(true).append(true).open(p);
        let error_file = error_path.as_ref().map(open).transpose()?;
        let mut access_files: Vec<(String, File)> = Vec::new();
        for (key, p) in &access {
            if !access_files.iter().any(|(k, _)| k == key) {
                access_files.push((key.clone(), open(p)?));
            }
        }
        let inner = LogsInner { retention, errors: VecDeque::new(), access: VecDeque::new(), access_total: 0, error_file, access_files, error_path, access_paths: access };
        Ok(Logs { inner: Arc::new(Mutex::new(inner)), access_written: Arc::new(tokio::sync::Notify::new()) })
    }

    pub fn error(&self, line: String) {
        tracing::info!(target: "proxy::error_log", "{line}");
        let mut g = self.inner.lock();
        if let Some(f) = g.error_file.as_mut() {
            let _ = writeln!(f, "{line}");
        }
        let keep = g.retention;
        retain(&mut g.errors, line, keep);
    }

    /// One request's line in each of `to` (the access logs that apply to
    /// it); kept in memory once.
    pub fn access(&self, e: AccessEntry, to: &[AccessLogSpec]) {
        let mut g = self.inner.lock();
        for spec in to {
            if let Some((_, f)) = g.access_files.iter_mut().find(|(k, _)| *k == spec.path) {
                let mut line = nginx_model::logs::render_access_escaped(&spec.format, &e, spec.escape);
                line.push('\n');
                let _ = f.write_all(line.as_bytes());
            }
        }
        let keep = g.retention;
        retain(&mut g.access, e, keep);
        g.access_total += 1;
        drop(g);
        self.access_written.notify_waiters();
    }

    /// Waits (at most `limit`) until `n` access lines have been written in
    /// all: a request's line comes when nginx frees it, which may be well
    /// after its response (a lingering close).
    pub async fn wait_access(&self, n: usize, limit: std::time::Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let written = self.access_written.notified();
            tokio::pin!(written);
            written.as_mut().enable();
            if self.inner.lock().access_total >= n {
                return true;
            }
            if tokio::time::timeout_at(deadline, written).await.is_err() {
                return self.inner.lock().access_total >= n;
            }
        }
    }

    /// `ngx_reopen_files` (SIGUSR1): every file opened again by its path
    /// (a rotated file is left alone, a new one created).
    pub fn reopen(&self) -> std::io::Result<()> {
        let open = |p: &PathBuf| OpenOptions::new().create(true).append(true).open(p);
        let mut g = self.inner.lock();
        if let Some(p) = g.error_path.clone() {
            g.error_file = Some(open(&p)?);
        }
        let paths = g.access_paths.clone();
        for (key, f) in g.access_files.iter_mut() {
            if let Some((_, p)) = paths.iter().find(|(k, _)| k == key) {
                *f = open(p)?;
            }
        }
        Ok(())
    }

    pub fn errors(&self) -> Vec<String> {
        self.inner.lock().errors.iter().cloned().collect()
    }

    pub fn access_entries(&self) -> Vec<AccessEntry> {
        self.inner.lock().access.iter().cloned().collect()
    }
}


/// Appends `item`, dropping the oldest beyond the retention.
fn retain<T>(q: &mut VecDeque<T>, item: T, retention: Retention) {
    let Retention::Last(n) = retention else { return };
    if q.len() >= n {
        q.pop_front();
    }
    q.push_back(item);
}

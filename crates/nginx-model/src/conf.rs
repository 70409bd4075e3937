//! The nginx.conf subset that decides upstream 502s, read the way nginx 1.22
//! reads it: bytes tokenized as `ngx_conf_read_token` does, each directive
//! checked and applied as soon as its `;` or `{` is read
//! (`ngx_conf_handler`), with nginx's messages and nginx's line numbers (the
//! line being read when the error was found). Directives real nginx needs
//! but that do not change the emulation (pid, temp paths, events) are
//! checked and ignored. What nginx accepts but the emulation does not run
//! (regex locations, `proxy_pass` with variables, ...) is recorded in
//! [`Config::unsupported`]; `resolve` leaves it out and lists it, naming
//! FILE:LINE.

use crate::directive::{self, show, Lookup, ModType, Slot, SlotError};
use crate::include::{self, Files};
use crate::num;
use crate::retry::Ft;
use crate::time;
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfError {
    pub msg: String,
    pub file: String,
    /// 0: nginx names no place (e.g. `no "events" section in configuration`).
    pub line: usize,
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.msg)
        } else {
            write!(f, "{} in {}:{}", self.msg, self.file, self.line)
        }
    }
}

impl std::error::Error for ConfError {}

/// Where a directive was read (nginx's `FILE:LINE`). Not part of the
/// configuration's value: two configurations that say the same thing are
/// equal wherever they were read, so `==` ignores it.
#[derive(Debug, Clone, Default)]
pub struct Pos {
    pub file: String,
    /// 0: not read from a file (built in code).
    pub line: usize,
}

impl Eq for Pos {}

impl PartialEq for Pos {
    fn eq(&self, _: &Pos) -> bool {
        true
    }
}

impl fmt::Display for Pos {
    /// ` in FILE:LINE`, nginx's suffix, or nothing.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            Ok(())
        } else {
            write!(f, " in {}:{}", self.file, self.line)
        }
    }
}

/// Where each of a list of directives was read; like [`Pos`], not part of
/// the value.
#[derive(Debug, Clone, Default)]
pub struct Places(pub Vec<Pos>);

impl PartialEq for Places {
    fn eq(&self, _: &Places) -> bool {
        true
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub error_log: Option<String>,
    pub log_formats: Vec<(String, String)>,
    /// The `escape=` of the formats that name one other than `default`.
    pub log_escapes: Vec<(String, crate::logs::LogEscape)>,
    /// The http level's `access_log` lines (empty: none at this level).
    pub access_log: Vec<AccessLog>,
    pub upstreams: Vec<Upstream>,
    pub servers: Vec<Server>,
    /// `proxy_*` at http level, inherited by servers and locations.
    pub proxy: ProxyDirectives,
    /// What nginx accepts but this emulation does not run, in file order.
    pub unsupported: Vec<(String, Pos)>,
    /// Files nginx creates even under `-t` (temp directories, the pid
    /// file, logs), as written (prefix-relative unless absolute).
    pub nginx_files: NginxFiles,
    /// Directives read and checked but without effect on the 502 model.
    pub not_emulated: NotEmulated,
    /// `worker_processes`: the proxy runs this many event loops (threads).
    pub worker_processes: WorkerProcesses,
    /// A `resolver` line somewhere: nginx would resolve the host names of
    /// `proxy_pass` scripts with it (the emulation does not).
    pub resolver: bool,
}

/// `worker_processes N | auto` (`ngx_set_worker_processes`; 1 when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerProcesses {
    Count(u32),
    /// One per CPU (`ngx_ncpu`).
    Auto,
}

impl Default for WorkerProcesses {
    fn default() -> Self {
        WorkerProcesses::Count(1)
    }
}

/// The names of the directives nginx would run and the emulation does not
/// (sorted, each once); like [`Pos`], not part of the value.
#[derive(Debug, Clone, Default)]
pub struct NotEmulated(pub BTreeSet<String>);

impl PartialEq for NotEmulated {
    fn eq(&self, _: &NotEmulated) -> bool {
        true
    }
}

/// What nginx creates at start; like [`Pos`], not part of the emulated
/// configuration's value (`==` ignores it).
#[derive(Debug, Clone, Default)]
pub struct NginxFiles(pub Vec<NginxFile>);

impl PartialEq for NginxFiles {
    fn eq(&self, _: &NginxFiles) -> bool {
        true
    }
}

/// A file or directory nginx itself creates at start and at `-t`.
#[derive(Debug, Clone, PartialEq)]
pub enum NginxFile {
    /// `*_temp_path` (`ngx_create_paths`: mkdir).
    TempDir(String),
    /// `pid` (`ngx_create_pidfile`).
    Pid(String),
    /// An `error_log` or `access_log` file (`ngx_conf_open_file`).
    Log(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct AccessLog {
    /// `None` = `access_log off`.
    pub path: Option<String>,
    pub format: String,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Upstream {
    pub name: String,
    pub servers: Vec<UpstreamServer>,
    /// `keepalive N`; `None` = not configured (profile decides the default).
    pub keepalive: Option<u32>,
    pub keepalive_timeout: Option<Duration>,
    /// nginx's ngx_int_t; values past u32::MAX saturate (never reached).
    pub keepalive_requests: Option<u32>,
    pub keepalive_time: Option<Duration>,
    /// `least_conn` (ngx_http_upstream_least_conn_module).
    pub least_conn: bool,
    /// nginx.conf text rendered inside the block instead of the fields
    /// above, after the `server` lines (a scenario's `upstream_conf`, its
    /// times scaled by [`rescale_times`]); the fields hold what it says.
    pub verbatim: Option<String>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpstreamServer {
    /// `host:port` (nginx's default port 80 filled in).
    pub addr: String,
    pub weight: u32,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub down: bool,
    pub backup: bool,
    pub pos: Pos,
}

/// A `server` parameter of an upstream block that nginx rejects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameter \"{0}\"")]
pub struct InvalidParameter(pub String);

fn sat_u32(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// The parameters of an upstream `server` line (`ngx_http_upstream_server`),
/// before the address is parsed: `weight=` (atoi, not 0), `max_conns=`,
/// `max_fails=` (atoi), `fail_timeout=` (`ngx_parse_time(.., 1)`: seconds,
/// no `ms`), `backup`, `down`. Returns the server and whether `max_conns`
/// (not emulated) was given.
fn server_params(mut srv: UpstreamServer, params: &[&[u8]]) -> Result<(UpstreamServer, bool), InvalidParameter> {
    let mut max_conns = false;
    for a in params {
        let bad = || InvalidParameter(show(a));
        if let Some(v) = a.strip_prefix(b"weight=") {
            srv.weight = num::atoi(v).filter(|w| *w != 0).map(sat_u32).ok_or_else(bad)?;
        } else if let Some(v) = a.strip_prefix(b"max_conns=") {
            num::atoi(v).ok_or_else(bad)?;
            max_conns = true;
        } else if let Some(v) = a.strip_prefix(b"max_fails=") {
            srv.max_fails = num::atoi(v).map(sat_u32).ok_or_else(bad)?;
        } else if let Some(v) = a.strip_prefix(b"fail_timeout=") {
            srv.fail_timeout = time::parse_sec(v).ok_or_else(bad)?;
        } else if *a == b"backup" {
            srv.backup = true;
        } else if *a == b"down" {
            srv.down = true;
        } else {
            return Err(bad());
        }
    }
    Ok((srv, max_conns))
}

impl UpstreamServer {
    /// A `server ADDR PARAMS...` line's parameters (`ngx_http_upstream_server`).
    pub fn with_params(addr: impl Into<String>, params: &[String]) -> Result<Self, InvalidParameter> {
        let bytes: Vec<&[u8]> = params.iter().map(|p| p.as_bytes()).collect();
        server_params(UpstreamServer::new(addr), &bytes).map(|(s, _)| s)
    }

    pub fn new(addr: impl Into<String>) -> Self {
        use crate::resolve::defaults;
        UpstreamServer {
            addr: addr.into(),
            weight: defaults::WEIGHT,
            max_fails: defaults::MAX_FAILS,
            fail_timeout: defaults::FAIL_TIMEOUT,
            down: false,
            backup: false,
            pos: Pos::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Server {
    /// `host:port` of each `listen` (port 80 filled in; `*` and a bare port
    /// become `0.0.0.0`). Empty: nginx's default, `*:80` (`*:8000` if not root).
    pub listen: Vec<String>,
    /// Where each `listen` was read (same order; may be shorter when built in code).
    pub listen_pos: Places,
    pub server_name: Option<String>,
    /// This server's `access_log` lines (empty: inherited from http).
    pub access_log: Vec<AccessLog>,
    pub proxy: ProxyDirectives,
    pub locations: Vec<Location>,
    /// `location @name` blocks: reached only by `error_page` (and
    /// `try_files`), never by a request's URI (`ngx_http_named_location`).
    pub named: Vec<Location>,
    /// The server level's first `return`: it runs in the server rewrite
    /// phase, before a location is chosen, and answers every request.
    pub ret: Option<Return>,
    pub pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Location {
    /// `=` for an exact match, empty for a prefix match (`^~` too: without
    /// regex locations it is a prefix match).
    pub modifier: String,
    pub path: String,
    pub proxy: ProxyDirectives,
    /// This location's `access_log` lines (empty: inherited from its server).
    pub access_log: Vec<AccessLog>,
    /// nginx.conf text rendered after `proxy_pass` instead of the other
    /// directives (a scenario's `location_conf`); `proxy` holds what it says.
    pub verbatim: Option<String>,
    /// The location's first `return` (the rewrite phase stops there; it
    /// wins over `proxy_pass`).
    pub ret: Option<Return>,
    pub pos: Pos,
}

/// `return CODE [TEXT]`, `return CODE URL`, `return URL`
/// (`ngx_http_rewrite_return`): a lone URL is a 302 to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Return {
    pub code: u16,
    /// The text (a body, or for 301, 302, 303, 307 and 308 the Location).
    pub text: Option<String>,
}

impl Return {
    /// The directive as written back (text quoted).
    pub fn render(&self) -> String {
        match &self.text {
            Some(t) => format!("return {} \"{}\";", self.code, t.replace('\\', "\\\\").replace('"', "\\\"")),
            None => format!("return {};", self.code),
        }
    }
}

/// The `proxy_*` directives; `None` = not set at this level (inherit).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ProxyDirectives {
    pub pass: Option<String>,
    /// Where `proxy_pass` was read.
    pub pass_pos: Pos,
    pub http_version: Option<String>,
    /// `proxy_set_header` lines; nginx inherits them only if a level has none.
    pub set_header: Option<Vec<(String, String)>>,
    pub connect_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    /// `proxy_next_upstream`: several lines at one level are OR-ed
    /// (`ngx_conf_set_bitmask_slot`).
    pub next_upstream: Option<Ft>,
    pub next_upstream_tries: Option<u32>,
    pub next_upstream_timeout: Option<Duration>,
    pub request_buffering: Option<bool>,
    /// `proxy_buffering` (`crate::buffering`).
    pub buffering: Option<bool>,
    /// `proxy_max_temp_file_size` (0: no temporary file).
    pub max_temp_file_size: Option<u64>,
    /// `proxy_ignore_headers` names X-Accel-Buffering (`None`: no such
    /// line here; the bitmask is inherited whole).
    pub ignore_accel_buffering: Option<bool>,
    /// `proxy_temp_file_write_size` (checked; the file is written as read).
    pub temp_file_write_size: Option<usize>,
    /// `proxy_temp_path PATH [L1 [L2 [L3]]]` as written (relative to the prefix).
    pub temp_path: Option<(String, [usize; 3])>,
    pub buffer_size: Option<usize>,
    /// `proxy_buffers N size` (`ngx_conf_set_bufs_slot`).
    pub buffers: Option<(usize, usize)>,
    /// `proxy_busy_buffers_size`.
    pub busy_buffers_size: Option<usize>,
    /// `client_max_body_size` (ngx_http_core_module; merged like proxy_*).
    pub client_max_body_size: Option<u64>,
    /// `client_body_buffer_size` (ngx_http_core_module).
    pub client_body_buffer_size: Option<usize>,
    /// `server_tokens on|off` (ngx_http_core_module).
    pub server_tokens: Option<bool>,
    /// The client side's `keepalive_timeout T [H]`, `keepalive_requests`,
    /// `keepalive_time` (ngx_http_core_module; not the upstream block's).
    pub keepalive_timeout: Option<(Duration, Option<u64>)>,
    pub keepalive_requests: Option<u64>,
    pub keepalive_time: Option<Duration>,
    /// `add_header NAME VALUE [always]` lines (ngx_http_headers_module);
    /// inherited only by a level that has none, like proxy_set_header.
    pub add_header: Option<Vec<AddHeader>>,
    /// `error_page` lines (ngx_http_core_module); inherited only by a
    /// level that has none.
    pub error_pages: Option<Vec<ErrorPage>>,
    /// `proxy_intercept_errors on|off`.
    pub intercept_errors: Option<bool>,
    /// `proxy_bind ADDR[:PORT]` (`Some(Some(addr))`, as written) or `proxy_bind
    /// off` (`Some(None)`): the upstream socket's local address.
    pub bind: Option<Option<String>>,
    /// `auth_request URI` (ngx_http_auth_request_module), `Some("")` for
    /// `auth_request off` (`ngx_http_auth_request` stores an empty URI;
    /// `ngx_http_auth_request_merge_conf` inherits it like any string).
    pub auth_request: Option<String>,
}

/// `error_page CODE... [=[RESPONSE]] URI` (`ngx_http_core_error_page`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorPage {
    pub codes: Vec<u16>,
    /// `None`: the response keeps the error's status; `Some(0)` (`=`):
    /// the target's; `Some(n)` (`=n`): n.
    pub overwrite: Option<u16>,
    pub uri: String,
}

/// One `add_header` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddHeader {
    pub name: String,
    pub value: String,
    /// `always`: for every status, not only the successful and redirect ones.
    pub always: bool,
}

impl ProxyDirectives {
    /// nginx's merge: a value set here wins, else the parent's.
    pub fn merged_over(&self, parent: &ProxyDirectives) -> ProxyDirectives {
        ProxyDirectives {
            pass: self.pass.clone().or(parent.pass.clone()),
            pass_pos: if self.pass.is_some() { self.pass_pos.clone() } else { parent.pass_pos.clone() },
            http_version: self.http_version.clone().or(parent.http_version.clone()),
            set_header: self.set_header.clone().or(parent.set_header.clone()),
            add_header: self.add_header.clone().or(parent.add_header.clone()),
            error_pages: self.error_pages.clone().or(parent.error_pages.clone()),
            intercept_errors: self.intercept_errors.or(parent.intercept_errors),
            connect_timeout: self.connect_timeout.or(parent.connect_timeout),
            send_timeout: self.send_timeout.or(parent.send_timeout),
            read_timeout: self.read_timeout.or(parent.read_timeout),
            next_upstream: self.next_upstream.or(parent.next_upstream),
            next_upstream_tries: self.next_upstream_tries.or(parent.next_upstream_tries),
            next_upstream_timeout: self.next_upstream_timeout.or(parent.next_upstream_timeout),
            request_buffering: self.request_buffering.or(parent.request_buffering),
            buffering: self.buffering.or(parent.buffering),
            buffer_size: self.buffer_size.or(parent.buffer_size),
            max_temp_file_size: self.max_temp_file_size.or(parent.max_temp_file_size),
            ignore_accel_buffering: self.ignore_accel_buffering.or(parent.ignore_accel_buffering),
            temp_file_write_size: self.temp_file_write_size.or(parent.temp_file_write_size),
            temp_path: self.temp_path.clone().or(parent.temp_path.clone()),
            buffers: self.buffers.or(parent.buffers),
            busy_buffers_size: self.busy_buffers_size.or(parent.busy_buffers_size),
            client_max_body_size: self.client_max_body_size.or(parent.client_max_body_size),
            client_body_buffer_size: self.client_body_buffer_size.or(parent.client_body_buffer_size),
            server_tokens: self.server_tokens.or(parent.server_tokens),
            keepalive_timeout: self.keepalive_timeout.or(parent.keepalive_timeout),
            keepalive_requests: self.keepalive_requests.or(parent.keepalive_requests),
            keepalive_time: self.keepalive_time.or(parent.keepalive_time),
            bind: self.bind.clone().or(parent.bind.clone()),
            auth_request: self.auth_request.clone().or(parent.auth_request.clone()),
        }
    }
}


/// A string as nginx's C functions see it: up to the first NUL.
pub fn c_str(s: &str) -> &str {
    s.split('\0').next().unwrap_or("")
}

/// A token as a value (`%V`: all bytes), lossy UTF-8.
fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

// ---- tokenizer: ngx_conf_read_token ------------------------------------------

/// nginx reads a file through a buffer of this size (`NGX_CONF_BUFFER`); a
/// token (or comment) that fills it is "too long".
pub const CONF_BUFFER: usize = 4096;

/// How a statement ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// `;` (`NGX_OK`).
    Semi,
    /// `{` (`NGX_CONF_BLOCK_START`).
    Open,
    /// `}` with no words before it (`NGX_CONF_BLOCK_DONE`).
    Close,
    /// End of file with no words pending (`NGX_CONF_FILE_DONE`).
    Eof,
}

/// The words of one statement, unescaped as nginx does, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub words: Vec<Vec<u8>>,
    pub end: End,
}

/// `ngx_conf_read_token` over the bytes of a file: the buffer refills and
/// the line counter behave as nginx's, so errors name the same line.
pub struct Reader<'a> {
    src: Cow<'a, [u8]>,
    file: Cow<'a, str>,
    pos: usize,
    /// End of what nginx's buffer holds (a file offset).
    last: usize,
    /// The line being read (`cf->conf_file->line`).
    pub line: usize,
}

impl<'a> Reader<'a> {
    pub fn new(src: &'a [u8], file: &'a str) -> Self {
        Reader {
            src: Cow::Borrowed(src),
            file: Cow::Borrowed(file),
            pos: 0,
            last: 0,
            line: 1,
        }
    }

    /// A reader of an included file (its bytes read by the parser).
    pub fn owned(src: Vec<u8>, file: String) -> Reader<'static> {
        Reader {
            src: Cow::Owned(src),
            file: Cow::Owned(file),
            pos: 0,
            last: 0,
            line: 1,
        }
    }

    /// How far the reader has read (a byte offset into the file).
    pub fn offset(&self) -> usize {
        self.pos
    }

    /// The file's name as nginx prints it.
    pub fn file(&self) -> &str {
        &self.file
    }

    fn err(&self, msg: String) -> ConfError {
        ConfError {
            msg,
            file: self.file.to_string(),
            line: self.line,
        }
    }

    /// The next statement, or nginx's error at nginx's line.
    pub fn next_statement(&mut self) -> Result<Statement, ConfError> {
        let mut words: Vec<Vec<u8>> = Vec::new();
        let (mut need_space, mut last_space, mut sharp_comment, mut variable) = (false, true, false, false);
        let (mut quoted, mut s_quoted, mut d_quoted) = (false, false, false);
        let mut start = self.pos;
        let mut start_line = self.line;
        loop {
            if self.pos >= self.last {
                if self.last >= self.src.len() {
                    if !words.is_empty() || !last_space {
                        return Err(self.err("unexpected end of file, expecting \";\" or \"}\"".into()));
                    }
                    return Ok(Statement { words, end: End::Eof });
                }
                if self.pos - start == CONF_BUFFER {
                    self.line = start_line;
                    let msg = if d_quoted {
                        "too long parameter, probably missing terminating \"\"\" character".into()
                    } else if s_quoted {
                        "too long parameter, probably missing terminating \"'\" character".into()
                    } else {
                        format!("too long parameter \"{}...\" started", show(&self.src[start..start + 10]))
                    };
                    return Err(self.err(msg));
                }
                // The buffer keeps the current token and is filled up.
                self.last = (start + CONF_BUFFER).min(self.src.len());
            }
            let ch = self.src[self.pos];
            self.pos += 1;
            if ch == b'\n' {
                self.line += 1;
                sharp_comment = false;
            }
            if sharp_comment {
                continue;
            }
            if quoted {
                quoted = false;
                continue;
            }
            let space = matches!(ch, b' ' | b'\t' | b'\r' | b'\n');
            if need_space {
                if space {
                    last_space = true;
                    need_space = false;
                    continue;
                }
                match ch {
                    b';' => return Ok(Statement { words, end: End::Semi }),
                    b'{' => return Ok(Statement { words, end: End::Open }),
                    b')' => {
                        last_space = true;
                        need_space = false;
                    }
                    _ => return Err(self.err(format!("unexpected \"{}\"", show(&[ch])))),
                }
            }
            if last_space {
                start = self.pos - 1;
                start_line = self.line;
                if space {
                    continue;
                }
                match ch {
                    b';' | b'{' => {
                        if words.is_empty() {
                            return Err(self.err(format!("unexpected \"{}\"", ch as char)));
                        }
                        let end = if ch == b'{' { End::Open } else { End::Semi };
                        return Ok(Statement { words, end });
                    }
                    b'}' => {
                        if !words.is_empty() {
                            return Err(self.err("unexpected \"}\"".into()));
                        }
                        return Ok(Statement { words, end: End::Close });
                    }
                    b'#' => sharp_comment = true,
                    b'\\' => {
                        quoted = true;
                        last_space = false;
                    }
                    b'"' => {
                        start += 1;
                        d_quoted = true;
                        last_space = false;
                    }
                    b'\'' => {
                        start += 1;
                        s_quoted = true;
                        last_space = false;
                    }
                    b'$' => {
                        variable = true;
                        last_space = false;
                    }
                    _ => last_space = false,
                }
                continue;
            }
            if ch == b'{' && variable {
                continue;
            }
            variable = false;
            if ch == b'\\' {
                quoted = true;
                continue;
            }
            if ch == b'$' {
                variable = true;
                continue;
            }
            let mut found = false;
            if d_quoted {
                if ch == b'"' {
                    d_quoted = false;
                    need_space = true;
                    found = true;
                }
            } else if s_quoted {
                if ch == b'\'' {
                    s_quoted = false;
                    need_space = true;
                    found = true;
                }
            } else if space || ch == b';' || ch == b'{' {
                last_space = true;
                found = true;
            }
            if found {
                words.push(unescape(&self.src[start..self.pos - 1]));
                match ch {
                    b';' => return Ok(Statement { words, end: End::Semi }),
                    b'{' => return Ok(Statement { words, end: End::Open }),
                    _ => {}
                }
            }
        }
    }
}

/// nginx's copy of a word: `\"`, `\'`, `\\` lose the backslash, `\t` `\r`
/// `\n` become the control character, any other backslash is kept.
pub fn unescape(w: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(w.len());
    let mut i = 0;
    while i < w.len() {
        if w[i] == b'\\' {
            match w.get(i + 1) {
                Some(b'"' | b'\'' | b'\\') => i += 1,
                Some(b't') => {
                    out.push(b'\t');
                    i += 2;
                    continue;
                }
                Some(b'r') => {
                    out.push(b'\r');
                    i += 2;
                    continue;
                }
                Some(b'n') => {
                    out.push(b'\n');
                    i += 2;
                    continue;
                }
                _ => {}
            }
        }
        out.push(w[i]);
        i += 1;
    }
    out
}

// ---- directives: ngx_conf_handler ----------------------------------------------

/// nginx's configuration contexts: the block being read, as the module
/// type and `cmd_type` bits `ngx_conf_handler` matches directives against
/// (`NGX_MAIN_CONF`, `NGX_EVENT_CONF`, `NGX_HTTP_MAIN_CONF`, `_SRV_`,
/// `_LOC_`, `_UPS_`, `_SIF_` (if in server), `_LIF_` (if in location),
/// `_LMT_` (limit_except)).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ctx {
    Main,
    Events,
    Http,
    Upstream,
    Server,
    Location,
    IfServer,
    IfLocation,
    LimitExcept,
}

impl Ctx {
    /// `cf->module_type` and `cf->cmd_type` while this block is read.
    pub fn types(self) -> (ModType, u32) {
        use directive as d;
        match self {
            Ctx::Main => (ModType::Core, d::MAIN_CONF),
            Ctx::Events => (ModType::Event, d::EVENT_CONF),
            Ctx::Http => (ModType::Http, d::HTTP_MAIN_CONF),
            Ctx::Upstream => (ModType::Http, d::HTTP_UPS_CONF),
            Ctx::Server => (ModType::Http, d::HTTP_SRV_CONF),
            Ctx::Location => (ModType::Http, d::HTTP_LOC_CONF),
            Ctx::IfServer => (ModType::Http, d::HTTP_SIF_CONF),
            Ctx::IfLocation => (ModType::Http, d::HTTP_LIF_CONF),
            Ctx::LimitExcept => (ModType::Http, d::HTTP_LMT_CONF),
        }
    }
}

const MAIN: &[Ctx] = &[Ctx::Main];
const HSL: &[Ctx] = &[Ctx::Http, Ctx::Server, Ctx::Location];

/// The directives this parser reads itself (in these contexts); every other
/// directive nginx knows is checked from nginx's table ([`directive`]) and
/// runs as a no-op. Contexts and argument counts come from nginx's table
/// for all of them.
const DIRECTIVES: &[(&str, &[Ctx])] = &[
    ("worker_processes", MAIN),
    ("pid", MAIN),
    ("daemon", MAIN),
    ("master_process", MAIN),
    ("error_log", MAIN),
    ("events", MAIN),
    ("http", MAIN),
    ("worker_connections", &[Ctx::Events]),
    ("server", &[Ctx::Http]),
    ("upstream", &[Ctx::Http]),
    ("log_format", &[Ctx::Http]),
    ("listen", &[Ctx::Server]),
    ("server_name", &[Ctx::Server]),
    ("location", &[Ctx::Server, Ctx::Location]),
    ("proxy_pass", &[Ctx::Location]),
    ("error_log", HSL),
    ("access_log", HSL),
    ("client_body_temp_path", HSL),
    ("proxy_temp_path", HSL),
    ("fastcgi_temp_path", HSL),
    ("uwsgi_temp_path", HSL),
    ("scgi_temp_path", HSL),
    ("default_type", HSL),
    ("sendfile", HSL),
    ("tcp_nodelay", HSL),
    ("keepalive_timeout", HSL),
    ("keepalive_requests", HSL),
    ("keepalive_time", HSL),
    ("proxy_buffering", HSL),
    ("proxy_request_buffering", HSL),
    ("server_tokens", HSL),
    ("client_max_body_size", HSL),
    ("client_body_buffer_size", HSL),
    ("proxy_http_version", HSL),
    ("proxy_set_header", HSL),
    ("proxy_connect_timeout", HSL),
    ("proxy_send_timeout", HSL),
    ("proxy_read_timeout", HSL),
    ("proxy_next_upstream", HSL),
    ("proxy_next_upstream_tries", HSL),
    ("proxy_next_upstream_timeout", HSL),
    ("proxy_buffer_size", HSL),
    ("proxy_buffers", HSL),
    ("proxy_busy_buffers_size", HSL),
    ("proxy_max_temp_file_size", HSL),
    ("proxy_ignore_headers", HSL),
    ("proxy_temp_file_write_size", HSL),
    ("proxy_bind", HSL),
    ("auth_request", HSL),
    ("server", &[Ctx::Upstream]),
    ("keepalive", &[Ctx::Upstream]),
    ("keepalive_timeout", &[Ctx::Upstream]),
    ("keepalive_requests", &[Ctx::Upstream]),
    ("keepalive_time", &[Ctx::Upstream]),
];

/// Directives read from nginx's table whose behaviour the proxy has
/// already, so `proxy -t` does not list them: `zone` (the upstream's state
/// in shared memory, for several workers: the proxy is one process, its
/// state is shared already), `resolver` and `resolver_timeout` (used only
/// for names resolved while running, i.e. proxy_pass with variables, which
/// is noted on its own; the names in upstream blocks and proxy_pass are
/// resolved once at start by both).
const NO_OP_HERE: &[&str] = &["zone", "resolver", "resolver_timeout"];

/// Directives read here whose value has no effect on the 502 model
/// (listed by `proxy -t` as not emulated, like the ones read from nginx's
/// table only).
const READ_NOT_EMULATED: &[&str] = &[
    "pid",
    "daemon",
    "master_process",
    "worker_connections",
    "default_type",
    "sendfile",
    "tcp_nodelay",
    "client_body_temp_path",
    "fastcgi_temp_path",
    "uwsgi_temp_path",
    "scgi_temp_path",
];

/// The directive names this emulation reads (each in its contexts).
pub fn claimed() -> impl Iterator<Item = (&'static str, &'static [Ctx])> {
    DIRECTIVES.iter().map(|(n, c)| (*n, *c))
}

/// One directive as `ngx_conf_handler` hands it to its handler.
struct Dir {
    name: &'static str,
    /// The arguments (without the name).
    args: Vec<Vec<u8>>,
    /// Where its `;` or `{` was read.
    file: String,
    line: usize,
    /// nginx's row for it.
    def: &'static directive::Directive,
}

impl Dir {
    fn arg(&self, i: usize) -> &[u8] {
        &self.args[i]
    }
}

/// The duplicates rule of nginx's `ngx_conf_set_*_slot`s: a slot set once
/// per configuration level.
#[derive(Default)]
struct Seen(Vec<&'static str>);

impl Seen {
    fn once(&mut self, p: &Parser, d: &Dir) -> Result<(), ConfError> {
        if self.0.contains(&d.name) {
            return Err(p.at(d, format!("\"{}\" directive is duplicate", d.name)));
        }
        self.0.push(d.name);
        Ok(())
    }
}

/// `proxy_bind`'s address as `ngx_parse_addr_port` reads it: an address
/// (IPv6 bare, or bracketed with a port), optionally with a port of
/// 1..65535 (observed with nginx 1.22.1 `-t`: `[::1]` alone is refused).
pub fn bind_addr(v: &str) -> Option<std::net::SocketAddr> {
    use std::net::{IpAddr, SocketAddr};
    if let Ok(a) = v.parse::<SocketAddr>() {
        return (a.port() != 0).then_some(a);
    }
    v.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0))
}

/// An address as `ngx_parse_url` splits it (`ngx_parse_inet_url`).
struct Url {
    host: String,
    /// `None`: no port given (nginx's default port applies).
    port: Option<u16>,
    /// A `/` or `?` part (only `proxy_pass` may have one), as written.
    uri: Option<String>,
}

/// `ngx_parse_inet_url` without name resolution: `Err` is nginx's `u->err`.
/// `listen` also takes a bare port; `uri_part` allows a path.
fn parse_url(s: &[u8], listen: bool, uri_part: bool) -> Result<Url, &'static str> {
    if let Some(inner) = s.strip_prefix(b"[") {
        return parse_inet6_url(inner, uri_part);
    }
    let find = |c: u8| s.iter().position(|&b| b == c);
    let mut last = s.len();
    let mut port_at = find(b':');
    let mut uri = find(b'/');
    if let Some(a) = find(b'?') {
        if uri.is_none_or(|u| a < u) {
            uri = Some(a);
        }
    }
    if let Some(u) = uri {
        if listen || !uri_part {
            return Err("invalid host");
        }
        last = u;
        if port_at.is_some_and(|p| u < p) {
            port_at = None;
        }
    }
    let port_ok = |p: &[u8]| num::atoi(p).filter(|n| (1..=65535).contains(n)).map(|n| n as u16).ok_or("invalid port");
    let mut port = None;
    if let Some(c) = port_at {
        let mut digits = &s[c + 1..last];
        if listen {
            if let Some(d) = digits.iter().position(|&b| b == b'-') {
                let hi = port_ok(&digits[d + 1..])?;
                let lo = port_ok(&digits[..d])?;
                if lo > hi {
                    return Err("invalid port range");
                }
                digits = &digits[..d];
            }
        }
        port = Some(port_ok(digits)?);
        last = c;
    } else if uri.is_none() && listen {
        // A bare port (`listen 80`).
        if let Some(n) = num::atoi(&s[..last]) {
            return if (1..=65535).contains(&n) { Ok(Url { host: "*".into(), port: Some(n as u16), uri: None }) } else { Err("invalid port") };
        }
    }
    if last == 0 {
        return Err("no host");
    }
    Ok(Url { host: text(&s[..last]), port, uri: uri.map(|u| text(&s[u..])) })
}

/// `ngx_parse_inet6_url`: `[ADDR]`, `[ADDR]:PORT` (after the `[`); the
/// address must be IPv6.
fn parse_inet6_url(s: &[u8], uri_part: bool) -> Result<Url, &'static str> {
    let close = s.iter().position(|&b| b == b']').ok_or("invalid host")?;
    let (addr, rest) = (&s[..close], &s[close + 1..]);
    let (port_part, uri) = match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if uri_part => (&rest[..i], Some(text(&rest[i..]))),
        Some(_) => return Err("invalid host"),
        None => (rest, None),
    };
    let port = match port_part {
        b"" => None,
        p => {
            let digits = p.strip_prefix(b":").ok_or("invalid host")?;
            Some(
                num::atoi(digits)
                    .filter(|n| (1..=65535).contains(n))
                    .map(|n| n as u16)
                    .ok_or("invalid port")?,
            )
        }
    };
    let host = text(addr);
    if host.parse::<std::net::Ipv6Addr>().is_err() {
        return Err("invalid IPv6 address");
    }
    Ok(Url { host, port, uri })
}

/// A `listen`/`server` address as the proxy binds or connects to it. The
/// host is what `getaddrinfo` sees: nginx's C string, up to a NUL.
fn host_port(host: &str, port: u16) -> String {
    let host = c_str(host);
    let host = if host == "*" { "0.0.0.0" } else { host };
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Whether a host name resolves (nginx resolves `listen` and upstream
/// `server` names while it parses: `ngx_parse_url`). The caller brings the
/// resolver; [`parse`] resolves nothing.
pub type Hosts<'a> = &'a dyn Fn(&str, u16) -> bool;

/// The variables nginx 1.22 (Debian nginx-light's modules) defines, from
/// the `ngx_http_variable_t` tables of `src/http` (`ngx_http_variables.c`,
/// the upstream, proxy, log, ssl, realip, ... modules).
const NGINX_VARIABLES: &[&str] = &[
    "ancient_browser", "args", "binary_remote_addr", "body_bytes_sent", "bytes_sent", "connection",
    "connection_requests", "connection_time", "connections_active", "connections_reading", "connections_waiting",
    "connections_writing", "content_length", "content_type", "date_gmt", "date_local", "document_root",
    "document_uri", "fastcgi_path_info", "fastcgi_script_name", "grpc_internal_trailers", "gzip_ratio", "host",
    "hostname", "http2", "https", "invalid_referer", "is_args", "limit_conn_status", "limit_rate",
    "limit_req_status", "modern_browser", "msec", "msie", "nginx_version", "pid", "pipe", "proxy_add_via",
    "proxy_add_x_forwarded_for", "proxy_host", "proxy_internal_body_length", "proxy_internal_chunked", "proxy_port",
    "proxy_protocol_addr", "proxy_protocol_port", "proxy_protocol_server_addr", "proxy_protocol_server_port",
    "query_string", "realip_remote_addr", "realip_remote_port", "realpath_root", "remote_addr", "remote_port",
    "remote_user", "request", "request_body", "request_body_file", "request_completion", "request_filename",
    "request_id", "request_length", "request_method", "request_time", "request_uri", "scheme", "secure_link",
    "secure_link_expires", "server_addr", "server_name", "server_port", "server_protocol", "slice_range",
    "ssl_alpn_protocol", "ssl_cipher", "ssl_ciphers", "ssl_client_cert", "ssl_client_escaped_cert",
    "ssl_client_fingerprint", "ssl_client_i_dn", "ssl_client_i_dn_legacy", "ssl_client_raw_cert", "ssl_client_s_dn",
    "ssl_client_s_dn_legacy", "ssl_client_serial", "ssl_client_v_end", "ssl_client_v_remain", "ssl_client_v_start",
    "ssl_client_verify", "ssl_curve", "ssl_curves", "ssl_early_data", "ssl_protocol", "ssl_server_name",
    "ssl_session_id", "ssl_session_reused", "status", "tcpinfo_rcv_space", "tcpinfo_rtt", "tcpinfo_rttvar",
    "tcpinfo_snd_cwnd", "time_iso8601", "time_local", "uid_got", "uid_reset", "uid_set", "upstream_addr",
    "upstream_bytes_received", "upstream_bytes_sent", "upstream_cache_etag", "upstream_cache_last_modified",
    "upstream_cache_status", "upstream_connect_time", "upstream_header_time", "upstream_response_length",
    "upstream_response_time", "upstream_status", "uri",
];

/// Prefix variables (`$http_NAME`, `$arg_NAME`, ...).
const NGINX_VARIABLE_PREFIXES: &[&str] = &["http_", "sent_http_", "sent_trailer_", "cookie_", "arg_", "upstream_http_", "upstream_trailer_", "upstream_cookie_"];

/// The names of a regex's named captures (`(?<name>`, `(?P<name>`,
/// `(?'name'`): nginx defines a variable for each (`ngx_http_regex_compile`).
fn named_captures(re: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (i, _) in re.match_indices("(?") {
        let rest = &re[i + 2..];
        let rest = rest.strip_prefix('P').unwrap_or(rest);
        let (open, close) = match rest.chars().next() {
            Some('<') => ('<', '>'),
            Some('\'') => ('\'', '\''),
            _ => continue,
        };
        let body = &rest[open.len_utf8()..];
        if body.starts_with(['=', '!']) {
            continue; // look-behind, not a name
        }
        if let Some(e) = body.find(close) {
            out.push(body[..e].to_string());
        }
    }
    out
}

/// Which arguments of a directive nginx compiles as scripts or complex
/// values, so that their variables must exist (`ngx_http_variables_init_vars`).
/// `All`: every argument; `From(n)`: argument n on; `At(n)`: argument n;
/// `Last`: the last one. Complex-value slots (`ngx_http_set_complex_value_slot`)
/// are `At(0)` without being listed.
#[derive(Clone, Copy)]
enum VarArgs {
    All,
    From(usize),
    At(usize),
    Last,
}

const VARIABLE_ARGS: &[(&str, VarArgs)] = &[
    ("add_header", VarArgs::From(1)),
    ("add_trailer", VarArgs::From(1)),
    ("return", VarArgs::Last),
    ("rewrite", VarArgs::At(1)),
    ("set", VarArgs::At(1)),
    ("root", VarArgs::At(0)),
    ("alias", VarArgs::At(0)),
    ("try_files", VarArgs::All),
    ("index", VarArgs::All),
    ("error_page", VarArgs::Last),
    ("proxy_pass", VarArgs::At(0)),
    ("proxy_set_header", VarArgs::At(1)),
    ("proxy_redirect", VarArgs::All),
    ("proxy_cookie_domain", VarArgs::All),
    ("proxy_cookie_path", VarArgs::All),
    ("proxy_set_body", VarArgs::At(0)),
    ("proxy_cache_key", VarArgs::At(0)),
    ("proxy_no_cache", VarArgs::All),
    ("proxy_cache_bypass", VarArgs::All),
    ("fastcgi_param", VarArgs::At(1)),
    ("uwsgi_param", VarArgs::At(1)),
    ("scgi_param", VarArgs::At(1)),
    ("grpc_set_header", VarArgs::At(1)),
    ("fastcgi_pass", VarArgs::At(0)),
    ("uwsgi_pass", VarArgs::At(0)),
    ("scgi_pass", VarArgs::At(0)),
    ("grpc_pass", VarArgs::At(0)),
    ("memcached_pass", VarArgs::At(0)),
    ("limit_req_zone", VarArgs::At(0)),
    ("limit_conn_zone", VarArgs::At(0)),
    ("hash", VarArgs::At(0)),
    ("map", VarArgs::At(0)),
    ("split_clients", VarArgs::At(0)),
    ("auth_request_set", VarArgs::At(1)),
    ("sub_filter", VarArgs::All),
    ("charset", VarArgs::At(0)),
    ("mirror", VarArgs::At(0)),
];

/// `ngx_http_variables_init_vars`: every variable used must exist.
fn known_variable(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    NGINX_VARIABLES.contains(&lower.as_str()) || NGINX_VARIABLE_PREFIXES.iter().any(|p| lower.starts_with(p))
}

/// One file being read: `include` suspends the including file's reader.
struct Frame<'a> {
    rd: Reader<'a>,
    /// The block depth at which this file started (its `}` below that
    /// depth is "unexpected").
    base: usize,
    /// A later match of a glob, not opened yet (nginx opens them in turn).
    pending: bool,
}

/// nginx keeps every file of an include chain open while it parses the
/// innermost one, so an include cycle ends when the descriptors run out
/// (`ulimit -n`, 1024 by default, less stdin/out/err and the error log).
pub const MAX_INCLUDE_DEPTH: usize = 1020;

/// How deeply blocks may nest (all files together): an emulation limit,
/// not nginx's. Each open block is a level of recursion here, so a deeper
/// file would overflow the stack; past this it is refused with an error at
/// the `{` that goes too deep. Real configurations nest a handful of levels.
pub const MAX_BLOCK_DEPTH: usize = 500;

struct Parser<'a> {
    rd: Reader<'a>,
    /// The suspended files, innermost last.
    stack: Vec<Frame<'a>>,
    /// Blocks open now (all files together), and where the current file began.
    depth: usize,
    base: usize,
    files: &'a dyn Files,
    /// nginx's conf prefix (the main file's directory) and prefix (`-p`).
    conf_prefix: String,
    prefix: String,
    hosts: Hosts<'a>,
    cfg: Config,
    /// Per listen address (`ngx_http_add_listen`): options set, default server.
    listens: Vec<(String, bool, bool)>,
    /// Scripts and log formats whose variables nginx resolves after http{}.
    used_variables: Vec<String>,
    /// Variables the configuration defines (`set`, `map`, `geo`,
    /// `split_clients`, named regex captures, ...).
    defined_variables: Vec<String>,
    /// Slots of the http{} block's main configuration set anywhere in it.
    http_seen: Seen,
    /// `worker_connections` (default 512).
    worker_connections: i64,
}

/// A `location` line as read (`ngx_http_core_location`).
struct LocationHead {
    modifier: String,
    path: String,
    named: bool,
    /// Why it is not emulated, if it is not.
    what: Option<&'static str>,
    pos: Pos,
}

impl LocationHead {
    /// The modifier and name a nested location is checked against.
    fn as_parent(&self) -> (String, String) {
        if self.named {
            (String::new(), format!("@{}", &self.path[1..]))
        } else {
            (self.modifier.clone(), self.path.clone())
        }
    }
}

/// Per-level state of the http{}, server{} and location{} levels.
#[derive(Default)]
struct Level {
    seen: Seen,
    proxy: ProxyDirectives,
    /// Every `access_log` of the level: nginx writes each of them.
    access_log: Vec<AccessLog>,
    /// A location's first `return`.
    ret: Option<Return>,
}

impl<'a> Parser<'a> {
    fn file(&self) -> String {
        self.rd.file().to_string()
    }

    /// A place in the file being read.
    fn pos(&self, line: usize) -> Pos {
        Pos {
            file: self.file(),
            line,
        }
    }

    fn at(&self, d: &Dir, msg: String) -> ConfError {
        ConfError {
            msg,
            file: d.file.clone(),
            line: d.line,
        }
    }

    /// An error at the line being read (nginx's `ngx_conf_log_error`).
    fn here(&self, msg: impl Into<String>) -> ConfError {
        ConfError {
            msg: msg.into(),
            file: self.file(),
            line: self.rd.line,
        }
    }

    /// An error nginx reports without a place (after parsing).
    fn nowhere(&self, msg: impl Into<String>) -> ConfError {
        ConfError {
            msg: msg.into(),
            file: self.file(),
            line: 0,
        }
    }

    fn unsupported(&mut self, what: impl Into<String>, line: usize) {
        let pos = self.pos(line);
        self.cfg.unsupported.push((what.into(), pos));
    }

    /// A directive read but not run: `proxy -t` lists it.
    fn not_emulated(&mut self, name: &str) {
        self.cfg.not_emulated.0.insert(name.to_string());
    }

    /// The next statement of whichever file is being read: at the end of an
    /// included file, the including file goes on (`ngx_conf_parse` returns
    /// to `ngx_conf_include`); a block left open in it is nginx's
    /// "unexpected end of file".
    fn statement(&mut self) -> Result<Statement, ConfError> {
        loop {
            let st = self.rd.next_statement()?;
            if st.end == End::Eof {
                if let Some(f) = self.stack.pop() {
                    if self.depth > self.base {
                        return Err(self.here("unexpected end of file, expecting \"}\""));
                    }
                    self.rd = f.rd;
                    self.base = f.base;
                    continue;
                }
            }
            return Ok(st);
        }
    }

    /// `ngx_conf_include` (and the `include` of `types`, which does not
    /// glob): the file's name is taken from the conf prefix; a glob that
    /// matches nothing includes nothing, a missing plain file is nginx's
    /// `open() failed` at the include line. The files are read in turn, in
    /// the context of the block that includes them.
    fn include(&mut self, arg: &[u8], glob: bool) -> Result<(), ConfError> {
        let path = include::full_name(&self.conf_prefix, &show(arg));
        let paths = if glob && include::is_glob(&path) {
            include::glob(self.files, &path)
        } else {
            vec![path]
        };
        let open = 1 + self.stack.iter().filter(|f| !f.pending).count();
        let mut readers = Vec::new();
        for p in paths {
            if open + 1 > MAX_INCLUDE_DEPTH {
                return Err(self.here(format!(
                    "open() \"{p}\" failed (24: Too many open files; an include cycle?)"
                )));
            }
            let bytes = self.files.read(&p).map_err(|e| {
                self.here(format!(
                    "open() \"{p}\" failed ({})",
                    include::errno_text(&e)
                ))
            })?;
            readers.push(Reader::owned(bytes, p));
        }
        let mut pending = false;
        for r in readers.into_iter().rev() {
            let prev = std::mem::replace(&mut self.rd, r);
            self.stack.push(Frame {
                rd: prev,
                base: self.base,
                pending,
            });
            self.base = self.depth;
            pending = true;
        }
        Ok(())
    }

    /// The next directive of a block in `ctx`, checked as `ngx_conf_handler`
    /// does (nginx's table: name, context, `;` or `{`, argument count);
    /// `None` at the block's `}` (or the main file's end at top level).
    /// `include` is followed here, in any block.
    fn next(&mut self, ctx: Ctx) -> Result<Option<(Dir, bool)>, ConfError> {
        loop {
            let st = self.statement()?;
            let open = match st.end {
                End::Close if self.depth == self.base => return Err(self.here("unexpected \"}\"")),
                End::Close => {
                    self.depth -= 1;
                    return Ok(None);
                }
                End::Eof if self.depth > self.base => {
                    return Err(self.here("unexpected end of file, expecting \"}\""))
                }
                End::Eof => return Ok(None),
                End::Open => true,
                End::Semi => false,
            };
            let name = &st.words[0];
            let (module_type, cmd_type) = ctx.types();
            let def = match directive::lookup(name, module_type, cmd_type) {
                Lookup::Found(d) => d,
                Lookup::NotAllowed => {
                    return Err(
                        self.here(format!("\"{}\" directive is not allowed here", show(name)))
                    )
                }
                Lookup::Unknown => {
                    return Err(self.here(format!("unknown directive \"{}\"", show(name))))
                }
            };
            let n = def.name;
            let block = def.ty & directive::BLOCK != 0;
            if !block && open {
                return Err(self.here(format!("directive \"{n}\" is not terminated by \";\"")));
            }
            if block && !open {
                return Err(self.here(format!("directive \"{n}\" has no opening \"{{\"")));
            }
            if !directive::args_ok(def.ty, st.words.len() - 1) {
                return Err(self.here(format!("invalid number of arguments in \"{n}\" directive")));
            }
            let mut words = st.words;
            words.remove(0);
            if n == "include" {
                self.include(&words[0], true)?;
                continue;
            }
            if open {
                if self.depth >= MAX_BLOCK_DEPTH {
                    return Err(self.here(format!(
                        "too deeply nested blocks (emulation limit {MAX_BLOCK_DEPTH})"
                    )));
                }
                self.depth += 1;
            }
            let d = Dir {
                name: n,
                args: words,
                file: self.file(),
                line: self.rd.line,
                def,
            };
            if Self::claimed(&d, ctx) {
                if READ_NOT_EMULATED.contains(&n) {
                    self.not_emulated(n);
                } else if n.starts_with("keepalive_") && ctx != Ctx::Upstream {
                    self.not_emulated(&format!("{n} (client side)"));
                }
            }
            return Ok(Some((d, open)));
        }
    }

    /// Whether this parser reads `d` itself in `ctx`.
    fn claimed(d: &Dir, ctx: Ctx) -> bool {
        DIRECTIVES
            .iter()
            .any(|(n, c)| *n == d.name && c.contains(&ctx))
    }

    /// A directive this parser does not read itself, as nginx's table
    /// describes it: a generic slot's value and duplicate rule
    /// (`ngx_conf_set_*_slot`), the custom handlers whose checks matter for
    /// real configurations, the variables it defines or uses, and its block
    /// (`if`, `limit_except`, `types`, `map`, `geo`, `split_clients`,
    /// `charset_map`). It has no effect on the emulation: `proxy -t` lists it.
    fn generic(&mut self, d: &Dir, open: bool, ctx: Ctx, seen: &mut Seen) -> Result<(), ConfError> {
        let def = d.def;
        if directive::has_duplicate_rule(def.slot) {
            // A slot of the http{} main configuration is one value wherever
            // in http{} it is set.
            let set = if def.level == directive::Level::Main && def.module_type == ModType::Http {
                &mut self.http_seen
            } else {
                seen
            };
            if set.0.contains(&def.field) {
                return Err(self.at(d, format!("\"{}\" directive is duplicate", d.name)));
            }
            set.0.push(def.field);
        }
        directive::check_slot(d.name, def.slot, &d.args).map_err(|e| self.slot_error(d, e))?;
        if def.slot == Slot::Complex {
            self.used_variables.push(text(d.arg(0)));
        }
        if let Some((_, which)) = VARIABLE_ARGS.iter().find(|(n, _)| *n == d.name) {
            let n = d.args.len();
            let range = match *which {
                VarArgs::All => 0..n,
                VarArgs::From(i) => i.min(n)..n,
                VarArgs::At(i) => i.min(n)..(i + 1).min(n),
                VarArgs::Last => n.saturating_sub(1)..n,
            };
            for a in &d.args[range] {
                self.used_variables.push(text(a));
            }
        }
        self.custom(d)?;
        if d.name == "proxy_pass" && matches!(ctx, Ctx::IfLocation | Ctx::LimitExcept) {
            self.no_uri_part(d)?;
        }
        // A location's or server's `return` is emulated (`location_return`);
        // inside `if` it is not.
        if d.name == "resolver" {
            self.cfg.resolver = true;
        }
        let emulated = (d.name == "least_conn" && ctx == Ctx::Upstream)
            || (d.name == "return" && matches!(ctx, Ctx::Location | Ctx::Server))
            || (matches!(d.name, "error_page" | "proxy_intercept_errors") && matches!(ctx, Ctx::Http | Ctx::Server | Ctx::Location)) || (d.name == "add_header" && matches!(ctx, Ctx::Http | Ctx::Server | Ctx::Location));
        if !(NO_OP_HERE.contains(&d.name) || emulated) {
            self.not_emulated(d.name);
        }
        if open {
            match d.name {
                "if" => self.if_block(d, ctx)?,
                "limit_except" => self.limit_except()?,
                "types" => self.types_block()?,
                "map" => self.map_block(d)?,
                "geo" => self.geo_block(d)?,
                "split_clients" => self.split_clients_block(d)?,
                "charset_map" => self.charset_map_block()?,
                // Every block directive of nginx-light is handled above or
                // read by this parser; a new one is read as directives of
                // the same block, so nothing is skipped unchecked.
                _ => {
                    let mut inner = Seen::default();
                    while let Some((s, o)) = self.next(ctx)? {
                        self.generic(&s, o, ctx, &mut inner)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// A variable a directive defines (`set`, `map`, `geo`,
    /// `split_clients`, ...): `$name`, else nginx's "invalid variable name".
    fn define_var(&mut self, d: &Dir, var: &[u8]) -> Result<(), ConfError> {
        let name = var.strip_prefix(b"$").ok_or_else(|| self.at(d, format!("invalid variable name \"{}\"", text(var))))?;
        self.defined_variables.push(text(name));
        Ok(())
    }

    /// The checks of custom handlers that real configurations trip over.
    fn custom(&mut self, d: &Dir) -> Result<(), ConfError> {
        match d.name {
            "set" | "auth_request_set" => {
                // ngx_http_rewrite_set: the name must be a `$variable`.
                self.define_var(d, d.arg(0))?;
            }
            "return" => {
                // ngx_http_rewrite_return: a code (at most 999), or a lone URL.
                let a = d.arg(0);
                let url = d.args.len() == 1
                    && (a.starts_with(b"http://")
                        || a.starts_with(b"https://")
                        || a.starts_with(b"$scheme"));
                if !url && num::atoi(a).is_none_or(|c| c > 999) {
                    return Err(self.at(d, format!("invalid return code \"{}\"", text(a))));
                }
            }
            "rewrite" => {
                // ngx_http_rewrite: the flag, if any.
                if let Some(f) = d.args.get(2) {
                    if !matches!(
                        f.as_slice(),
                        b"last" | b"break" | b"redirect" | b"permanent"
                    ) {
                        return Err(self.at(d, format!("invalid parameter \"{}\"", text(f))));
                    }
                }
                self.defined_variables
                    .extend(named_captures(&text(d.arg(0))));
            }
            "user" if self.files.privileged() => {
                // ngx_set_user: the user, then the group (the user's name
                // when none is given).
                let user = show(d.arg(0));
                if !self.files.user_exists(&user) {
                    return Err(self.at(d, format!("getpwnam(\"{user}\") failed")));
                }
                let group = d.args.get(1).map(|g| show(g)).unwrap_or(user);
                if !self.files.group_exists(&group) {
                    return Err(self.at(d, format!("getgrnam(\"{group}\") failed")));
                }
            }
            "load_module" => {
                // ngx_load_module: the path is taken from the prefix (-p),
                // not the conf prefix; the proxy cannot load a module, so its
                // directives stay unknown here.
                let name = show(d.arg(0));
                let path = if name.starts_with('/') {
                    name
                } else {
                    format!("{}{}", self.prefix, name)
                };
                if self.files.read(&path).is_err() {
                    return Err(self.at(d, format!("dlopen() \"{path}\" failed ({path}: cannot open shared object file: No such file or directory)")));
                }
            }
            "limit_except" => {
                const METHODS: &[&str] = &[
                    "GET",
                    "HEAD",
                    "POST",
                    "PUT",
                    "DELETE",
                    "MKCOL",
                    "COPY",
                    "MOVE",
                    "OPTIONS",
                    "PROPFIND",
                    "PROPPATCH",
                    "LOCK",
                    "UNLOCK",
                    "PATCH",
                ];
                for m in &d.args {
                    if !METHODS.iter().any(|x| x.as_bytes() == m.as_slice()) {
                        return Err(self.at(d, format!("invalid method \"{}\"", text(m))));
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// `ngx_http_rewrite_if`: the condition (its variables, its regex's
    /// named captures), then the block as `NGX_HTTP_SIF_CONF` or `_LIF_`.
    fn if_block(&mut self, d: &Dir, ctx: Ctx) -> Result<(), ConfError> {
        let first = d.arg(0);
        let last = &d.args[d.args.len() - 1];
        if first.first() != Some(&b'(') || last.last() != Some(&b')') {
            return Err(self.at(d, format!("invalid condition \"{}\"", text(first))));
        }
        let words: Vec<String> = d.args.iter().map(|a| text(a)).collect();
        for (i, w) in words.iter().enumerate() {
            let prev = if i > 0 { words[i - 1].as_str() } else { "" };
            if matches!(prev, "~" | "~*" | "!~" | "!~*") {
                self.defined_variables.extend(named_captures(w));
            } else {
                self.used_variables.push(w.clone());
            }
        }
        let inner = if ctx == Ctx::Server {
            Ctx::IfServer
        } else {
            Ctx::IfLocation
        };
        let mut seen = Seen::default();
        while let Some((s, o)) = self.next(inner)? {
            self.generic(&s, o, inner, &mut seen)?;
        }
        Ok(())
    }

    /// `ngx_http_core_limit_except`: a block of `NGX_HTTP_LMT_CONF` directives.
    fn limit_except(&mut self) -> Result<(), ConfError> {
        let mut seen = Seen::default();
        while let Some((s, o)) = self.next(Ctx::LimitExcept)? {
            self.generic(&s, o, Ctx::LimitExcept, &mut seen)?;
        }
        Ok(())
    }

    /// One entry of a block read by a custom handler (`cf->handler`:
    /// types, map, geo, ...): its words, or `None` at the block's `}`.
    /// nginx refuses a `{` inside such a block (`ngx_conf_parse`).
    fn entry(&mut self) -> Result<Option<Dir>, ConfError> {
        let st = self.statement()?;
        match st.end {
            End::Close if self.depth == self.base => Err(self.here("unexpected \"}\"")),
            End::Close => {
                self.depth -= 1;
                Ok(None)
            }
            End::Eof => Err(self.here("unexpected end of file, expecting \"}\"")),
            End::Open => Err(self.here("unexpected \"{\"")),
            End::Semi => {
                let def = match directive::lookup(b"include", ModType::Conf, directive::MAIN_CONF) {
                    Lookup::Found(d) => d,
                    _ => unreachable!("include is in nginx's table"),
                };
                Ok(Some(Dir {
                    name: "",
                    args: st.words,
                    file: self.file(),
                    line: self.rd.line,
                    def,
                }))
            }
        }
    }

    /// `ngx_http_core_types` + `ngx_http_core_type`: `TYPE EXT...;` lines;
    /// `include FILE` (exactly one argument, no glob).
    fn types_block(&mut self) -> Result<(), ConfError> {
        while let Some(e) = self.entry()? {
            if e.args[0] == b"include" {
                if e.args.len() != 2 {
                    return Err(self.at(
                        &e,
                        "invalid number of arguments in \"include\" directive".into(),
                    ));
                }
                self.include(&e.args[1], false)?;
            }
        }
        Ok(())
    }

    /// `ngx_http_map_block` + `ngx_http_map`: the new variable, then
    /// `KEY VALUE;` lines (`default`, `hostnames`, `volatile`, `include`;
    /// a repeated key is "conflicting parameter").
    fn map_block(&mut self, d: &Dir) -> Result<(), ConfError> {
        self.define_var(d, d.arg(1))?;
        let (mut keys, mut default) = (Vec::<Vec<u8>>::new(), false);
        while let Some(e) = self.entry()? {
            let a = &e.args;
            if a.len() == 1 && (a[0] == b"hostnames" || a[0] == b"volatile") {
                continue;
            }
            if a.len() != 2 {
                return Err(self.at(&e, "invalid number of the map parameters".into()));
            }
            if a[0] == b"include" {
                self.include(&a[1], true)?;
                continue;
            }
            self.used_variables.push(text(&a[1]));
            if a[0] == b"default" {
                if default {
                    return Err(self.at(&e, "duplicate default map parameter".into()));
                }
                default = true;
                continue;
            }
            if let Some(re) = a[0].strip_prefix(b"~") {
                self.defined_variables.extend(named_captures(&text(re)));
                continue;
            }
            // ngx_hash_add_key lowercases the key in place, so the message
            // shows it lowercased.
            let key = a[0]
                .strip_prefix(b"\\")
                .unwrap_or(&a[0])
                .to_ascii_lowercase();
            if keys.contains(&key) {
                return Err(self.at(&e, format!("conflicting parameter \"{}\"", show(&key))));
            }
            keys.push(key);
        }
        Ok(())
    }

    /// `ngx_http_geo_block` + `ngx_http_geo`: `geo [$src] $var`, then
    /// `NETWORK VALUE;` lines (`default`, `include`, `delete`, `proxy`,
    /// `ranges`, `proxy_recursive`). Networks are not checked.
    fn geo_block(&mut self, d: &Dir) -> Result<(), ConfError> {
        self.define_var(d, &d.args[d.args.len() - 1])?;
        if d.args.len() == 2 {
            self.used_variables.push(text(d.arg(0)));
        }
        while let Some(e) = self.entry()? {
            let a = &e.args;
            if a.len() == 1 && (a[0] == b"ranges" || a[0] == b"proxy_recursive") {
                continue;
            }
            if a.len() != 2 {
                return Err(self.at(&e, "invalid number of the geo parameters".into()));
            }
            if a[0] == b"include" {
                self.include(&a[1], true)?;
            }
        }
        Ok(())
    }

    /// `ngx_http_split_clients_block`: `PERCENT% VALUE;` or `* VALUE;`,
    /// at most 100 % in all.
    fn split_clients_block(&mut self, d: &Dir) -> Result<(), ConfError> {
        self.define_var(d, d.arg(1))?;
        let mut sum: u64 = 0;
        while let Some(e) = self.entry()? {
            let p = &e.args[0];
            if p.as_slice() != b"*" {
                // ngx_atofp(.., 2): digits with at most two decimals, not 0.
                let bad = || self.at(&e, format!("invalid percent value \"{}\"", text(p)));
                let num = p.strip_suffix(b"%").ok_or_else(bad)?;
                let (int, frac) = match num.iter().position(|&c| c == b'.') {
                    Some(i) => (&num[..i], &num[i + 1..]),
                    None => (num, &b""[..]),
                };
                if frac.len() > 2
                    || !int.iter().chain(frac).all(u8::is_ascii_digit)
                    || int.len() + frac.len() == 0
                {
                    return Err(bad());
                }
                let mut n: u64 = 0;
                for &c in int.iter().chain(frac) {
                    n = n.saturating_mul(10).saturating_add(u64::from(c - b'0'));
                }
                n = n.saturating_mul(10u64.pow(2 - frac.len() as u32));
                if n == 0 {
                    return Err(bad());
                }
                sum = sum.saturating_add(n);
            }
            if let Some(v) = e.args.get(1) {
                self.used_variables.push(text(v));
            }
        }
        if sum > 10000 {
            return Err(self.here("percent total is greater than 100%"));
        }
        Ok(())
    }

    /// `ngx_http_charset_map_block`: `XX YY;` pairs (not checked further).
    fn charset_map_block(&mut self) -> Result<(), ConfError> {
        while self.entry()?.is_some() {}
        Ok(())
    }

    fn invalid_value(&self, d: &Dir) -> ConfError {
        self.at(d, format!("\"{}\" directive invalid value", d.name))
    }

    /// A generic slot's refusal, as `ngx_conf_handler` prints it.
    fn slot_error(&self, d: &Dir, e: SlotError) -> ConfError {
        match e {
            SlotError::Directive(m) => self.at(d, format!("\"{}\" directive {m}", d.name)),
            SlotError::Own(m) => self.at(d, m),
        }
    }

    /// `ngx_conf_set_msec_slot`.
    fn msec(&self, d: &Dir) -> Result<Duration, ConfError> {
        directive::msec(d.arg(0)).map_err(|e| self.slot_error(d, e))
    }

    /// `ngx_conf_set_num_slot`.
    fn num(&self, d: &Dir) -> Result<i64, ConfError> {
        directive::num(d.arg(0)).map_err(|e| self.slot_error(d, e))
    }

    /// `ngx_conf_set_size_slot`.
    fn size(&self, d: &Dir) -> Result<i64, ConfError> {
        directive::size(d.arg(0)).map_err(|e| self.slot_error(d, e))
    }

    /// `ngx_conf_set_flag_slot`.
    fn flag(&self, d: &Dir) -> Result<bool, ConfError> {
        directive::flag(d.name, d.arg(0)).map_err(|e| self.slot_error(d, e))
    }

    /// `ngx_conf_set_enum_slot`: the index of the value.
    fn enumerated(&self, d: &Dir, values: &[&str]) -> Result<usize, ConfError> {
        directive::enumerated(values, d.arg(0)).map_err(|e| self.slot_error(d, e))
    }

    /// `ngx_log_set_log` + `ngx_log_set_levels`: a file and at most one level
    /// (plus debug_* bits, only without a level).
    fn error_log(&mut self, d: &Dir) -> Result<String, ConfError> {
        const LEVELS: [&str; 8] = ["emerg", "alert", "crit", "error", "warn", "notice", "info", "debug"];
        const DEBUG: [&str; 7] = ["debug_core", "debug_alloc", "debug_mutex", "debug_event", "debug_http", "debug_mail", "debug_stream"];
        let (mut level, mut debug_bits) = (0usize, false);
        for a in &d.args[1..] {
            if let Some(i) = LEVELS.iter().position(|l| l.as_bytes() == a.as_slice()) {
                if level != 0 || debug_bits {
                    return Err(self.at(d, format!("duplicate log level \"{}\"", text(a))));
                }
                level = i + 1;
            } else if DEBUG.iter().any(|l| l.as_bytes() == a.as_slice()) {
                if level != 0 {
                    return Err(self.at(d, format!("invalid log level \"{}\"", text(a))));
                }
                debug_bits = true;
            } else {
                return Err(self.at(d, format!("invalid log level \"{}\"", text(a))));
            }
        }
        let path = text(d.arg(0));
        if path != "stderr" && !path.starts_with("memory:") && !path.starts_with("syslog:") {
            self.cfg.nginx_files.0.push(NginxFile::Log(path.clone()));
        }
        Ok(path)
    }

    /// `ngx_conf_set_path_slot`.
    fn path(&self, d: &Dir) -> Result<(), ConfError> {
        directive::path(&d.args).map_err(|e| self.slot_error(d, e))
    }

    /// The directives every http{}, server{} and location{} level takes.
    fn common(&mut self, d: &Dir, lv: &mut Level) -> Result<bool, ConfError> {
        let p = &mut lv.proxy;
        match d.name {
            "client_body_temp_path" | "proxy_temp_path" | "fastcgi_temp_path" | "uwsgi_temp_path" | "scgi_temp_path" => {
                lv.seen.once(self, d)?;
                self.path(d)?;
                self.cfg.nginx_files.0.push(NginxFile::TempDir(text(d.arg(0))));
                if d.name == "proxy_temp_path" {
                    // ngx_conf_set_path_slot: the levels (checked by `path`).
                    let mut levels = [0usize; 3];
                    for (i, l) in d.args.iter().skip(1).take(3).enumerate() {
                        levels[i] = num::atoi(l).unwrap_or(0).max(0) as usize;
                    }
                    p.temp_path = Some((text(d.arg(0)), levels));
                }
            }
            "proxy_ignore_headers" => {
                // ngx_conf_set_bitmask_slot: lines add up. Only
                // X-Accel-Buffering changes what the emulation does.
                directive::check_slot(d.name, d.def.slot, &d.args).map_err(|e| self.slot_error(d, e))?;
                let accel = d.args.iter().any(|a| a.eq_ignore_ascii_case(b"X-Accel-Buffering"));
                if d.args.iter().any(|a| !a.eq_ignore_ascii_case(b"X-Accel-Buffering")) {
                    self.not_emulated("proxy_ignore_headers (but X-Accel-Buffering)");
                }
                let p = &mut lv.proxy;
                p.ignore_accel_buffering = Some(p.ignore_accel_buffering.unwrap_or(false) || accel);
            }
            "proxy_max_temp_file_size" => {
                lv.seen.once(self, d)?;
                // ngx_conf_set_size_slot (no `g`).
                p.max_temp_file_size = Some(self.size(d)?.max(0) as u64);
            }
            "proxy_temp_file_write_size" => {
                lv.seen.once(self, d)?;
                p.temp_file_write_size = Some(self.size(d)?.max(0) as usize);
            }
            "default_type" => lv.seen.once(self, d)?,
            "sendfile" | "tcp_nodelay" => {
                lv.seen.once(self, d)?;
                self.flag(d)?;
            }
            "proxy_buffering" => {
                lv.seen.once(self, d)?;
                p.buffering = Some(self.flag(d)?);
            }
            "keepalive_timeout" => {
                // ngx_http_core_keepalive: the client side's idle limit and
                // the optional `Keep-Alive: timeout=` value.
                lv.seen.once(self, d)?;
                let t = self.msec(d)?;
                let header = if d.args.len() == 2 {
                    match time::parse_sec(d.arg(1)) {
                        Some(h) => Some(h.as_secs()),
                        None => return Err(self.invalid_value(d)),
                    }
                } else {
                    None
                };
                p.keepalive_timeout = Some((t, header));
            }
            "keepalive_requests" => {
                lv.seen.once(self, d)?;
                p.keepalive_requests = Some(self.num(d)?.max(0) as u64);
            }
            "keepalive_time" => {
                lv.seen.once(self, d)?;
                p.keepalive_time = Some(self.msec(d)?);
            }
            "proxy_request_buffering" => {
                lv.seen.once(self, d)?;
                p.request_buffering = Some(self.flag(d)?);
            }
            "server_tokens" => {
                lv.seen.once(self, d)?;
                // on, off, build (build: the version string, as on).
                p.server_tokens = Some(self.enumerated(d, &["off", "on", "build"])? != 0);
            }
            "client_max_body_size" => {
                lv.seen.once(self, d)?;
                p.client_max_body_size = Some(num::parse_offset(d.arg(0)).ok_or_else(|| self.invalid_value(d))? as u64);
            }
            "client_body_buffer_size" => {
                lv.seen.once(self, d)?;
                p.client_body_buffer_size = Some(self.size(d)? as usize);
            }
            "proxy_buffer_size" => {
                lv.seen.once(self, d)?;
                p.buffer_size = Some(self.size(d)? as usize);
            }
            "proxy_buffers" => {
                lv.seen.once(self, d)?;
                // ngx_conf_set_bufs_slot: a number and a size, neither 0.
                let n = num::atoi(d.arg(0)).filter(|n| *n > 0).ok_or_else(|| self.invalid_value(d))?;
                let size = num::parse_size(d.arg(1)).filter(|s| *s > 0).ok_or_else(|| self.invalid_value(d))?;
                p.buffers = Some((n as usize, size as usize));
            }
            "auth_request" => {
                // ngx_http_auth_request: "is duplicate" at one level; `off`
                // is stored as an empty URI.
                lv.seen.once(self, d)?;
                let v = text(d.arg(0));
                p.auth_request = Some(if v == "off" { String::new() } else { v });
            }
            "proxy_busy_buffers_size" => {
                lv.seen.once(self, d)?;
                p.busy_buffers_size = Some(self.size(d)? as usize);
            }
            "proxy_bind" => {
                // ngx_http_upstream_bind_set_slot: off, a script (not run
                // here), or an address (ngx_parse_addr_port) and `transparent`.
                lv.seen.once(self, d)?;
                let v = text(d.arg(0));
                if v == "off" {
                    p.bind = Some(None);
                    return Ok(true);
                }
                if v.contains('$') {
                    self.unsupported("proxy_bind with variables (connections are not bound)", d.line);
                } else if bind_addr(&v).is_none() {
                    return Err(self.at(d, format!("invalid address \"{v}\"")));
                } else {
                    p.bind = Some(Some(v));
                }
                match d.args.get(1).map(|a| a.as_slice()) {
                    None => {}
                    Some(b"transparent") => self.unsupported("proxy_bind ... transparent", d.line),
                    Some(a) => return Err(self.at(d, format!("invalid parameter \"{}\"", text(a)))),
                }
            }
            "proxy_http_version" => {
                lv.seen.once(self, d)?;
                let i = self.enumerated(d, &["1.0", "1.1"])?;
                p.http_version = Some(["1.0", "1.1"][i].to_string());
            }
            "proxy_set_header" => {
                p.set_header.get_or_insert_with(Vec::new).push((text(d.arg(0)), text(d.arg(1))));
            }
            "proxy_connect_timeout" => {
                lv.seen.once(self, d)?;
                p.connect_timeout = Some(self.msec(d)?);
            }
            "proxy_send_timeout" => {
                lv.seen.once(self, d)?;
                p.send_timeout = Some(self.msec(d)?);
            }
            "proxy_read_timeout" => {
                lv.seen.once(self, d)?;
                p.read_timeout = Some(self.msec(d)?);
            }
            "proxy_next_upstream_timeout" => {
                lv.seen.once(self, d)?;
                p.next_upstream_timeout = Some(self.msec(d)?);
            }
            "proxy_next_upstream_tries" => {
                lv.seen.once(self, d)?;
                p.next_upstream_tries = Some(sat_u32(self.num(d)?));
            }
            "proxy_next_upstream" => {
                // ngx_conf_set_bitmask_slot: OR-ed over lines, any case;
                // `updating` (cache) has no effect here. `off` wins at merge.
                let mut mask = p.next_upstream.map(|m| m.0).unwrap_or(0);
                for a in &d.args {
                    let lower = a.to_ascii_lowercase();
                    if lower == b"updating" {
                        continue;
                    }
                    let (_, bit) = Ft::KEYWORDS
                        .iter()
                        .find(|(k, _)| k.as_bytes() == lower.as_slice())
                        .ok_or_else(|| self.at(d, format!("invalid value \"{}\"", show(a))))?;
                    mask |= bit.0;
                }
                p.next_upstream = Some(if mask & Ft::OFF.0 != 0 { Ft::OFF } else { Ft(mask) });
            }
            "error_log" => {
                let path = self.error_log(d)?;
                self.cfg.error_log = Some(path);
            }
            "access_log" => {
                let a = self.access_log(d)?;
                lv.access_log.push(a);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `ngx_http_log_set_log`: the format must already exist (`combined` is
    /// built in; names match in any case).
    fn access_log(&mut self, d: &Dir) -> Result<AccessLog, ConfError> {
        let pos = self.pos(d.line);
        if d.arg(0) == b"off" {
            if d.args.len() > 1 {
                return Err(self.at(d, format!("invalid parameter \"{}\"", text(d.arg(1)))));
            }
            return Ok(AccessLog { path: None, format: "combined".into(), pos });
        }
        let name = d.args.get(1).map(|n| text(n)).unwrap_or_else(|| "combined".into());
        let format = if name.eq_ignore_ascii_case("combined") {
            "combined".to_string()
        } else {
            self.cfg
                .log_formats
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(n, _)| n.clone())
                .ok_or_else(|| self.at(d, format!("unknown log format \"{name}\"")))?
        };
        let (mut buffer, mut flush) = (false, false);
        for a in d.args.iter().skip(2) {
            if let Some(v) = a.strip_prefix(b"buffer=") {
                num::parse_size(v).filter(|n| *n != 0).ok_or_else(|| self.at(d, format!("invalid buffer size \"{}\"", text(v))))?;
                buffer = true;
            } else if let Some(v) = a.strip_prefix(b"flush=") {
                time::parse_bytes(v).filter(|t| !t.is_zero()).ok_or_else(|| self.at(d, format!("invalid flush time \"{}\"", text(v))))?;
                flush = true;
            } else if a.starts_with(b"gzip") && (a.len() == 4 || a[4] == b'=') {
                if a.len() > 4 && !matches!(num::atoi(&a[5..]), Some(1..=9)) {
                    return Err(self.at(d, format!("invalid compression level \"{}\"", text(a))));
                }
                buffer = true;
                self.unsupported("a gzip-compressed access_log", d.line);
            } else if a.starts_with(b"if=") {
                self.unsupported("a conditional access_log (if=)", d.line);
            } else {
                return Err(self.at(d, format!("invalid parameter \"{}\"", text(a))));
            }
        }
        if flush && !buffer {
            return Err(self.at(d, format!("no buffer is defined for access_log \"{}\"", text(d.arg(0)))));
        }
        self.used_variables.push(text(d.arg(0)));
        if !d.arg(0).contains(&b'$') && !d.arg(0).starts_with(b"syslog:") {
            self.cfg.nginx_files.0.push(NginxFile::Log(text(d.arg(0))));
        }
        Ok(AccessLog { path: Some(text(d.arg(0))), format, pos })
    }

    fn main(&mut self) -> Result<(), ConfError> {
        let mut seen = Seen::default();
        let mut events = false;
        while let Some((d, open)) = self.next(Ctx::Main)? {
            if !Self::claimed(&d, Ctx::Main) {
                self.generic(&d, open, Ctx::Main, &mut seen)?;
                continue;
            }
            match d.name {
                "worker_processes" => {
                    seen.once(self, &d)?;
                    self.cfg.worker_processes = if d.arg(0) == b"auto" {
                        WorkerProcesses::Auto
                    } else {
                        match num::atoi(d.arg(0)) {
                            Some(n) => WorkerProcesses::Count(sat_u32(n)),
                            None => return Err(self.invalid_value(&d)),
                        }
                    };
                }
                "pid" => {
                    seen.once(self, &d)?;
                    self.cfg.nginx_files.0.push(NginxFile::Pid(text(d.arg(0))));
                }
                "daemon" | "master_process" => {
                    seen.once(self, &d)?;
                    self.flag(&d)?;
                }
                "error_log" => self.cfg.error_log = Some(self.error_log(&d)?),
                "events" => {
                    seen.once(self, &d)?;
                    events = true;
                    self.events()?;
                }
                "http" => {
                    seen.once(self, &d)?;
                    self.http()?;
                }
                _ => self.generic(&d, open, Ctx::Main, &mut seen)?,
            }
        }
        if !events {
            // ngx_event_init_conf: no file, no line.
            return Err(ConfError {
                msg: "no \"events\" section in configuration".into(),
                file: self.file(),
                line: 0,
            });
        }
        // ngx_event_init_conf: one connection more than listening sockets
        // (a wildcard address takes the port's specific ones; a server
        // without listen listens on *:80).
        let mut addrs: Vec<String> = self.listens.iter().map(|(a, _, _)| a.clone()).collect();
        if self.cfg.servers.iter().any(|s| s.listen.is_empty()) {
            addrs.push("0.0.0.0:80".into());
        }
        let port = |a: &str| a.rsplit(':').next().unwrap_or("").to_string();
        let wild: Vec<String> = addrs.iter().filter(|a| a.starts_with("0.0.0.0:")).map(|a| port(a)).collect();
        let mut sockets: Vec<String> = addrs.iter().map(|a| if wild.contains(&port(a)) { format!("0.0.0.0:{}", port(a)) } else { a.clone() }).collect();
        sockets.sort();
        sockets.dedup();
        if self.worker_connections <= sockets.len() as i64 {
            let msg = format!(
                "{} worker_connections are not enough for {} listening sockets",
                self.worker_connections,
                sockets.len()
            );
            return Err(self.nowhere(msg));
        }
        Ok(())
    }

    fn events(&mut self) -> Result<(), ConfError> {
        let mut seen = Seen::default();
        while let Some((d, open)) = self.next(Ctx::Events)? {
            if d.name == "worker_connections" {
                // ngx_event_connections: "is duplicate", then ngx_atoi.
                seen.once(self, &d)?;
                self.worker_connections = num::atoi(d.arg(0))
                    .ok_or_else(|| self.at(&d, format!("invalid number \"{}\"", text(d.arg(0)))))?;
            } else {
                self.generic(&d, open, Ctx::Events, &mut seen)?;
            }
        }
        Ok(())
    }

    fn http(&mut self) -> Result<(), ConfError> {
        let mut lv = Level::default();
        while let Some((d, open)) = self.next(Ctx::Http)? {
            if d.name == "add_header" {
                self.generic(&d, open, Ctx::Http, &mut lv.seen)?;
                self.add_header(&d, &mut lv)?;
                continue;
            }
            if matches!(d.name, "error_page" | "proxy_intercept_errors") {
                self.generic(&d, open, Ctx::Http, &mut lv.seen)?;
                self.error_page(&d, &mut lv)?;
                continue;
            }
            if !Self::claimed(&d, Ctx::Http) {
                self.generic(&d, open, Ctx::Http, &mut lv.seen)?;
                continue;
            }
            if self.common(&d, &mut lv)? {
                continue;
            }
            match d.name {
                "upstream" => self.upstream(&d)?,
                "server" => {
                    let s = self.server(&d)?;
                    self.cfg.servers.push(s);
                }
                "log_format" => {
                    let name = text(d.arg(0));
                    if name == "combined" || self.cfg.log_formats.iter().any(|(n, _)| *n == name) {
                        return Err(self.at(&d, format!("duplicate \"log_format\" name \"{name}\"")));
                    }
                    let mut parts = &d.args[1..];
                    if let Some(e) = parts[0].strip_prefix(b"escape=") {
                        let Some(escape) = crate::logs::LogEscape::parse(&text(e)) else {
                            return Err(self.at(&d, format!("unknown log format escaping \"{}\"", text(e))));
                        };
                        if escape != crate::logs::LogEscape::Default {
                            self.cfg.log_escapes.push((name.clone(), escape));
                        }
                        parts = &parts[1..];
                    }
                    let fmt: String = parts.iter().map(|p| text(p)).collect();
                    self.used_variables.push(fmt.clone());
                    self.cfg.log_formats.push((name, fmt));
                }
                _ => self.generic(&d, open, Ctx::Http, &mut lv.seen)?,
            }
        }
        self.cfg.proxy = lv.proxy;
        self.cfg.access_log = lv.access_log;
        self.http_done()
    }

    /// What nginx checks once http{} is read (`ngx_http_block`): the proxy
    /// module's merge (`ngx_http_proxy_merge_loc_conf`: at least 2
    /// `proxy_buffers` (default 8 4k); `proxy_busy_buffers_size`, default
    /// 2 × max(proxy_buffer_size, one of proxy_buffers), between that
    /// maximum and all the buffers but one), then the location trees
    /// (duplicate locations). Messages as nginx 1.22.1 prints them.
    fn http_done(&mut self) -> Result<(), ConfError> {
        const PAGE: usize = 4096;
        let refused = |p: &ProxyDirectives| -> Option<&'static str> {
            let (num, one) = p.buffers.unwrap_or((8, PAGE));
            if num < 2 {
                return Some("there must be at least 2 \"proxy_buffers\"");
            }
            let size = p.buffer_size.unwrap_or(PAGE).max(one);
            let busy = p.busy_buffers_size.unwrap_or(2 * size);
            if busy < size {
                Some("\"proxy_busy_buffers_size\" must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"")
            } else if busy > (num - 1) * one {
                Some("\"proxy_busy_buffers_size\" must be less than the size of all \"proxy_buffers\" minus one buffer")
            } else if p.temp_file_write_size.unwrap_or(2 * size) < size {
                Some("\"proxy_temp_file_write_size\" must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"")
            } else if p.max_temp_file_size.is_some_and(|m| m != 0 && m < size as u64) {
                Some("\"proxy_max_temp_file_size\" must be equal to zero to disable temporary files usage or must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\"")
            } else {
                None
            }
        };
        for s in &self.cfg.servers {
            let srv = s.proxy.merged_over(&self.cfg.proxy);
            if let Some(msg) = refused(&srv).or_else(|| s.locations.iter().find_map(|l| refused(&l.proxy.merged_over(&srv)))) {
                return Err(self.here(msg));
            }
        }
        for s in &self.cfg.servers {
            for (i, l) in s.locations.iter().enumerate() {
                let exact = l.modifier == "=";
                if s.locations[..i]
                    .iter()
                    .any(|o| (o.modifier == "=") == exact && o.path == l.path)
                {
                    return Err(ConfError {
                        msg: format!("duplicate location \"{}\"", l.path),
                        file: l.pos.file.clone(),
                        line: l.pos.line,
                    });
                }
            }
        }
        // ngx_http_variables_init_vars: no file, no line. proxy_set_header
        // values count where a server or location merges them
        // (ngx_http_proxy_init_headers), log formats where defined.
        let mut used = self.used_variables.clone();
        for s in &self.cfg.servers {
            let srv = s.proxy.set_header.as_ref().or(self.cfg.proxy.set_header.as_ref());
            used.extend(srv.iter().flat_map(|h| h.iter().map(|(_, v)| v.clone())));
            for l in &s.locations {
                let loc = l.proxy.set_header.as_ref().or(srv);
                used.extend(loc.iter().flat_map(|h| h.iter().map(|(_, v)| v.clone())));
            }
        }
        for v in used.iter().flat_map(|s| crate::logs::variable_names(s)) {
            if !known_variable(v)
                && !self
                    .defined_variables
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(v))
            {
                return Err(self.nowhere(format!("unknown \"{v}\" variable")));
            }
        }
        Ok(())
    }

    fn upstream(&mut self, d: &Dir) -> Result<(), ConfError> {
        let name = text(d.arg(0));
        if self.cfg.upstreams.iter().any(|u| u.name.eq_ignore_ascii_case(&name)) {
            return Err(self.at(d, format!("duplicate upstream \"{name}\"")));
        }
        let mut u = Upstream { name, servers: Vec::new(), keepalive: None, keepalive_timeout: None, keepalive_requests: None, keepalive_time: None, least_conn: false, verbatim: None, pos: self.pos(d.line) };
        let mut seen = Seen::default();
        while let Some((s, open)) = self.next(Ctx::Upstream)? {
            if s.name == "least_conn" {
                // ngx_http_upstream_least_conn: the table's checks (no
                // arguments), then "load balancing method redefined" is a
                // warning nginx prints, not an error.
                self.generic(&s, open, Ctx::Upstream, &mut seen)?;
                u.least_conn = true;
                continue;
            }
            if !Self::claimed(&s, Ctx::Upstream) {
                self.generic(&s, open, Ctx::Upstream, &mut seen)?;
                continue;
            }
            match s.name {
                "server" => {
                    let params: Vec<&[u8]> = s.args[1..].iter().map(|a| a.as_slice()).collect();
                    let (mut srv, max_conns) = server_params(UpstreamServer::new(String::new()), &params).map_err(|e| self.at(&s, e.to_string()))?;
                    let url = text(s.arg(0));
                    if s.arg(0).starts_with(b"unix:") {
                        self.unsupported(format!("a unix socket upstream server \"{url}\""), s.line);
                        srv.addr = url;
                    } else {
                        let parsed = parse_url(s.arg(0), false, false).map_err(|e| self.at(&s, format!("{e} in upstream \"{url}\"")))?;
                        let port = parsed.port.unwrap_or(80);
                        if parsed.host.parse::<std::net::IpAddr>().is_err() && !(self.hosts)(c_str(&parsed.host), port) {
                            return Err(self.at(&s, format!("host not found in upstream \"{url}\"")));
                        }
                        srv.addr = host_port(&parsed.host, port);
                    }
                    if max_conns {
                        self.unsupported("max_conns= on an upstream server", s.line);
                    }
                    srv.pos = self.pos(s.line);
                    u.servers.push(srv);
                }
                "keepalive" => {
                    // ngx_http_upstream_keepalive: 0 and non-numbers are invalid.
                    if u.keepalive.is_some() {
                        return Err(self.at(&s, "\"keepalive\" directive is duplicate".into()));
                    }
                    let n = num::atoi(s.arg(0)).filter(|n| *n != 0).ok_or_else(|| self.at(&s, format!("invalid value \"{}\" in \"keepalive\" directive", text(s.arg(0)))))?;
                    u.keepalive = Some(sat_u32(n));
                }
                "keepalive_timeout" => {
                    seen.once(self, &s)?;
                    u.keepalive_timeout = Some(self.msec(&s)?);
                }
                "keepalive_requests" => {
                    seen.once(self, &s)?;
                    u.keepalive_requests = Some(sat_u32(self.num(&s)?));
                }
                "keepalive_time" => {
                    seen.once(self, &s)?;
                    u.keepalive_time = Some(self.msec(&s)?);
                }
                _ => self.generic(&s, open, Ctx::Upstream, &mut seen)?,
            }
        }
        if u.servers.is_empty() {
            // Reported where the block ended.
            return Err(self.here("no servers are inside upstream"));
        }
        self.cfg.upstreams.push(u);
        Ok(())
    }

    fn server(&mut self, d: &Dir) -> Result<Server, ConfError> {
        let mut srv = Server { pos: self.pos(d.line), ..Server::default() };
        let mut lv = Level::default();
        while let Some((s, open)) = self.next(Ctx::Server)? {
            if s.name == "return" {
                self.generic(&s, open, Ctx::Server, &mut lv.seen)?;
                self.location_return(&s, &mut lv);
                continue;
            }
            if s.name == "add_header" {
                self.generic(&s, open, Ctx::Server, &mut lv.seen)?;
                self.add_header(&s, &mut lv)?;
                continue;
            }
            if matches!(s.name, "error_page" | "proxy_intercept_errors") {
                self.generic(&s, open, Ctx::Server, &mut lv.seen)?;
                self.error_page(&s, &mut lv)?;
                continue;
            }
            if !Self::claimed(&s, Ctx::Server) {
                self.generic(&s, open, Ctx::Server, &mut lv.seen)?;
                continue;
            }
            if self.common(&s, &mut lv)? {
                continue;
            }
            match s.name {
                "listen" => self.listen(&s, &mut srv)?,
                "server_name" => {
                    for n in s.args.iter().filter(|n| n.starts_with(b"~")) {
                        self.defined_variables
                            .extend(named_captures(&text(&n[1..])));
                    }
                    if srv.server_name.is_none() {
                        srv.server_name = Some(text(s.arg(0)));
                    }
                }
                "location" => self.location(&s, None, Some(&mut srv.locations))?,
                _ => self.generic(&s, open, Ctx::Server, &mut lv.seen)?,
            }
        }
        srv.proxy = lv.proxy;
        srv.access_log = lv.access_log;
        srv.ret = lv.ret;
        // Named locations take no URI (`ngx_http_core_find_location` never
        // sees them): kept apart, for `error_page @name`.
        let (named, plain): (Vec<Location>, Vec<Location>) = std::mem::take(&mut srv.locations).into_iter().partition(|l| l.modifier.is_empty() && l.path.starts_with('@'));
        srv.locations = plain;
        srv.named = named;
        Ok(srv)
    }

    /// `ngx_http_core_listen` and `ngx_http_add_listen`.
    fn listen(&mut self, d: &Dir, srv: &mut Server) -> Result<(), ConfError> {
        let raw = text(d.arg(0));
        let addr = if d.arg(0).starts_with(b"unix:") {
            self.unsupported(format!("listen on a unix socket \"{raw}\""), d.line);
            raw.clone()
        } else {
            let u = parse_url(d.arg(0), true, false).map_err(|e| self.at(d, format!("{e} in \"{raw}\" of the \"listen\" directive")))?;
            let port = u.port.unwrap_or(80);
            if u.host != "*" && u.host.parse::<std::net::IpAddr>().is_err() && !(self.hosts)(c_str(&u.host), port) {
                return Err(self.at(d, format!("host not found in \"{raw}\" of the \"listen\" directive")));
            }
            host_port(&u.host, port)
        };
        if raw.contains('-') && !raw.starts_with("unix:") && !raw.starts_with('[') {
            self.unsupported("a listen port range", d.line);
        }
        let (mut set, mut default) = (false, false);
        for a in &d.args[1..] {
            let bad = |what: &str| self.at(d, format!("invalid {what} \"{}\"", text(a)));
            let s = a.as_slice();
            if s == b"default_server" || s == b"default" {
                default = true;
            } else if s == b"bind" || s == b"reuseport" || s == b"deferred" {
                set = true;
            } else if s == b"ssl" || s == b"http2" || s == b"proxy_protocol" {
                self.unsupported(format!("listen ... {}", text(s)), d.line);
            } else if let Some(v) = s.strip_prefix(b"backlog=") {
                num::atoi(v).filter(|n| *n != 0).ok_or_else(|| bad("backlog"))?;
                set = true;
            } else if let Some(v) = s.strip_prefix(b"rcvbuf=") {
                num::parse_size(v).ok_or_else(|| bad("rcvbuf"))?;
                set = true;
            } else if let Some(v) = s.strip_prefix(b"sndbuf=") {
                num::parse_size(v).ok_or_else(|| bad("sndbuf"))?;
                set = true;
            } else if let Some(v) = s.strip_prefix(b"fastopen=") {
                num::atoi(v).ok_or_else(|| bad("fastopen"))?;
                set = true;
            } else if s.starts_with(b"ipv6only=o") || s.starts_with(b"so_keepalive=") || s.starts_with(b"accept_filter=") {
                set = true;
            } else {
                return Err(self.at(d, format!("invalid parameter \"{}\"", text(a))));
            }
        }
        // ngx_http_add_addresses / ngx_http_add_server, at the listen line.
        if srv.listen.contains(&addr) {
            return Err(self.at(d, format!("a duplicate listen {addr}")));
        }
        match self.listens.iter_mut().find(|(a, _, _)| *a == addr) {
            Some((_, s, df)) => {
                if set && *s {
                    return Err(self.at(d, format!("duplicate listen options for {addr}")));
                }
                if default && *df {
                    return Err(self.at(d, format!("a duplicate default server for {addr}")));
                }
                *s |= set;
                *df |= default;
            }
            None => self.listens.push((addr.clone(), set, default)),
        }
        srv.listen.push(addr);
        srv.listen_pos.0.push(self.pos(d.line));
        Ok(())
    }

    /// `ngx_http_core_location`; nested, regex and named locations are read
    /// (and checked) but not emulated; an emulated one is added to `out`.
    /// A nested location recurses here; everything else is read in
    /// [`Self::location_head`] and [`Self::location_directive`], so a level
    /// of nesting costs one small frame (see [`MAX_BLOCK_DEPTH`]).
    fn location(&mut self, d: &Dir, parent: Option<(&str, &str)>, out: Option<&mut Vec<Location>>) -> Result<(), ConfError> {
        let head = Box::new(self.location_head(d, parent)?);
        let mut lv = Box::<Level>::default();
        while let Some((s, open)) = self.next(Ctx::Location)? {
            if s.name == "location" {
                let (pm, pn) = head.as_parent();
                self.location(&s, Some((&pm, &pn)), None)?;
            } else {
                let regex_or_named = head.named || head.modifier.starts_with('~');
                self.location_directive(&s, open, &mut lv, regex_or_named)?;
            }
        }
        self.location_done(*head, *lv, out);
        Ok(())
    }

    /// A location's block read: an emulated location goes to `out`.
    fn location_done(&mut self, head: LocationHead, lv: Level, out: Option<&mut Vec<Location>>) {
        if let (None, Some(out)) = (head.what, out) {
            out.push(Location { modifier: head.modifier, path: head.path, proxy: lv.proxy, access_log: lv.access_log, verbatim: None, ret: lv.ret, pos: head.pos });
        }
    }

    /// A directive of a location's block other than a nested location.
    fn location_directive(&mut self, s: &Dir, open: bool, lv: &mut Level, regex_or_named: bool) -> Result<(), ConfError> {
        if s.name == "return" {
            self.generic(s, open, Ctx::Location, &mut lv.seen)?;
            self.location_return(s, lv);
            return Ok(());
        }
        if s.name == "add_header" {
            self.generic(s, open, Ctx::Location, &mut lv.seen)?;
            return self.add_header(s, lv);
        }
        if matches!(s.name, "error_page" | "proxy_intercept_errors") {
            self.generic(s, open, Ctx::Location, &mut lv.seen)?;
            return self.error_page(s, lv);
        }
        if !Self::claimed(s, Ctx::Location) {
            return self.generic(s, open, Ctx::Location, &mut lv.seen);
        }
        if self.common(s, lv)? {
            return Ok(());
        }
        match s.name {
            "proxy_pass" => self.proxy_pass(s, lv, regex_or_named),
            _ => self.generic(s, open, Ctx::Location, &mut lv.seen),
        }
    }

    /// `add_header` (`ngx_http_headers_add`), once `generic` has run the
    /// table's checks: a third argument must be `always`. Variables in the
    /// value are sent as written here (noted).
    fn add_header(&mut self, d: &Dir, lv: &mut Level) -> Result<(), ConfError> {
        let always = match d.args.get(2) {
            None => false,
            Some(a) if a.as_slice() == b"always" => true,
            Some(a) => return Err(self.at(d, format!("invalid parameter \"{}\"", text(a)))),
        };
        let value = text(d.arg(1));
        lv.proxy.add_header.get_or_insert_with(Vec::new).push(AddHeader { name: text(d.arg(0)), value, always });
        Ok(())
    }

    /// `error_page` (`ngx_http_core_error_page`: each code a number from
    /// 300 to 599, `=` or `=CODE` before the URI) and
    /// `proxy_intercept_errors`, once `generic` has run the table's checks.
    fn error_page(&mut self, d: &Dir, lv: &mut Level) -> Result<(), ConfError> {
        if d.name == "proxy_intercept_errors" {
            lv.proxy.intercept_errors = Some(d.arg(0) == b"on");
            return Ok(());
        }
        let n = d.args.len();
        let uri = text(d.arg(n - 1));
        let mut last = n - 1;
        let mut overwrite = None;
        if let Some(o) = d.args[n - 2].strip_prefix(b"=") {
            if n - 2 == 0 {
                return Err(self.at(d, format!("invalid value \"{}\"", text(&d.args[n - 2]))));
            }
            overwrite = Some(if o.is_empty() { 0 } else { num::atoi(o).filter(|&c| c <= 999).ok_or_else(|| self.at(d, format!("invalid value \"{}\"", text(&d.args[n - 2]))))? as u16 });
            last = n - 2;
        }
        let mut codes = Vec::new();
        for a in &d.args[..last] {
            let c = num::atoi(a).ok_or_else(|| self.at(d, format!("invalid value \"{}\"", text(a))))?;
            if !(300..=599).contains(&c) {
                return Err(self.at(d, format!("value \"{}\" must be between 300 and 599", text(a))));
            }
            codes.push(c as u16);
        }
        lv.proxy.error_pages.get_or_insert_with(Vec::new).push(ErrorPage { codes, overwrite, uri });
        Ok(())
    }

    /// A location's (or server's) `return`, once `generic` has run nginx's checks on it
    /// (`ngx_http_rewrite_return`); variables in its text are sent as
    /// written here (noted).
    fn location_return(&mut self, d: &Dir, lv: &mut Level) {
        let (code, text) = if d.args.len() == 1 && num::atoi(d.arg(0)).is_none() {
            (302, Some(text(d.arg(0))))
        } else {
            (num::atoi(d.arg(0)).unwrap_or(0) as u16, d.args.get(1).map(|t| text(t)))
        };
        if lv.ret.is_none() {
            lv.ret = Some(Return { code, text });
        }
    }

    /// A `location` line: its modifier and name, checked against the
    /// location it is in (`ngx_http_core_location`).
    fn location_head(&mut self, d: &Dir, parent: Option<(&str, &str)>) -> Result<LocationHead, ConfError> {
        let (modifier, name): (&[u8], Vec<u8>) = if d.args.len() == 2 {
            let m = d.arg(0);
            if !matches!(m, b"=" | b"~" | b"~*" | b"^~") {
                return Err(self.at(d, format!("invalid location modifier \"{}\"", text(m))));
            }
            (m, d.arg(1).to_vec())
        } else {
            let n = d.arg(0);
            if let Some(r) = n.strip_prefix(b"=") {
                (b"=", r.to_vec())
            } else if let Some(r) = n.strip_prefix(b"~*") {
                (b"~*", r.to_vec())
            } else if let Some(r) = n.strip_prefix(b"~") {
                (b"~", r.to_vec())
            } else if let Some(r) = n.strip_prefix(b"^~") {
                (b"^~", r.to_vec())
            } else {
                (b"", n.to_vec())
            }
        };
        let name = text(&name);
        let named = modifier.is_empty() && name.starts_with('@');
        let regex = modifier.starts_with(b"~");
        if regex {
            self.defined_variables.extend(named_captures(&name));
        }
        if let Some((pmod, pname)) = parent {
            if pmod == "=" {
                return Err(self.at(d, format!("location \"{name}\" cannot be inside the exact location \"{pname}\"")));
            }
            if pname.starts_with('@') {
                return Err(self.at(d, format!("location \"{name}\" cannot be inside the named location \"{pname}\"")));
            }
            if named {
                return Err(self.at(d, format!("named location \"{name}\" can be on the server level only")));
            }
            if !regex && !pmod.starts_with('~') && !name.starts_with(pname) {
                return Err(self.at(d, format!("location \"{name}\" is outside location \"{pname}\"")));
            }
        }
        let what = if parent.is_some() {
            Some("a nested location")
        } else if regex {
            Some("a regex location")
        } else {
            None
        };
        if let Some(w) = what {
            self.unsupported(w, d.line);
        }
        let modifier = if modifier == b"=" { "=" } else if regex { std::str::from_utf8(modifier).unwrap_or("~") } else { "" }.to_string();
        Ok(LocationHead { modifier, path: name, named, what, pos: self.pos(d.line) })
    }

    /// `ngx_http_proxy_pass`: what it names is decided by [`pass_target`];
    /// what the emulation does not run is noted here, once, and `resolve`
    /// leaves its location out.
    fn proxy_pass(&mut self, d: &Dir, lv: &mut Level, regex_or_named: bool) -> Result<(), ConfError> {
        if lv.proxy.pass.is_some() {
            return Err(self.at(d, "\"proxy_pass\" directive is duplicate".into()));
        }
        let url = d.arg(0);
        lv.proxy.pass = Some(text(url));
        lv.proxy.pass_pos = self.pos(d.line);
        let target = pass_target(url).map_err(|e| self.at(d, e.to_string()))?;
        let u = match &target {
            PassTarget::Http(u) | PassTarget::Https(u) => u,
            // Evaluated per request (resolve::dynamic_pass).
            PassTarget::Variables => return Ok(()),
            PassTarget::Unix => {
                self.unsupported(target.not_emulated().unwrap_or_default(), d.line);
                return Ok(());
            }
        };
        if let Some(port) = u.port {
            let host = u.host_text();
            if self.cfg.upstreams.iter().any(|up| up.name.eq_ignore_ascii_case(&host)) {
                return Err(self.at(d, format!("upstream \"{host}\" may not have port {port}")));
            }
        }
        if regex_or_named {
            self.no_uri_part(d)?;
        }
        if let Some(why) = target.not_emulated() {
            self.unsupported(why, d.line);
        }
        Ok(())
    }

    /// `ngx_http_proxy_pass`: where nginx cannot tell which part of the URI
    /// to replace (`clcf->named || clcf->regex || clcf->noname`), a URI part
    /// is refused.
    fn no_uri_part(&self, d: &Dir) -> Result<(), ConfError> {
        if let Ok(PassTarget::Http(u) | PassTarget::Https(u)) = pass_target(d.arg(0)) {
            if u.uri.is_some() {
                return Err(self.at(d, "\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block".into()));
            }
        }
        Ok(())
    }
}

/// What a `proxy_pass` URL names (`ngx_http_proxy_pass`). Decided here
/// only: the parser checks and notes it, `resolve` runs [`PassTarget::Http`]
/// and leaves the rest out (their locations answer 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PassTarget {
    /// `http://HOST[:PORT][URI]`.
    Http(PassUrl),
    /// `https://HOST[:PORT][URI]`: not emulated.
    Https(PassUrl),
    /// `http://unix:PATH`: not emulated.
    Unix,
    /// A URL with variables, evaluated per request: not emulated.
    Variables,
}

/// The address of an `http(s)://` `proxy_pass` (`ngx_parse_url`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassUrl {
    /// As `ngx_parse_url` splits it: an IPv6 address without its brackets.
    pub host: String,
    /// `None`: no port given (80 applies; 443 for https).
    pub port: Option<u16>,
    /// The `/` or `?` part after the address, as written.
    pub uri: Option<String>,
}

impl PassUrl {
    /// The host as nginx names it (`u->host`): an IPv6 address in brackets.
    pub fn host_text(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// The host and port as written, without the URI: the name of the
    /// upstream a `proxy_pass` without an `upstream` block makes.
    pub fn authority(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host_text()),
            None => self.host_text(),
        }
    }

    /// `$proxy_host` (`ngx_http_proxy_set_vars`): the host alone when no
    /// port or the default port is given.
    pub fn proxy_host(&self, default_port: u16) -> String {
        match self.port {
            Some(p) if p != default_port => self.authority(),
            _ => self.host_text(),
        }
    }

    /// The address to connect to (nginx's default port filled in).
    pub fn addr(&self, default_port: u16) -> String {
        host_port(&self.host, self.port.unwrap_or(default_port))
    }
}

impl PassTarget {
    /// Why the emulation does not run it (`None`: it does).
    pub fn not_emulated(&self) -> Option<&'static str> {
        match self {
            PassTarget::Http(_) => None,
            PassTarget::Https(_) => Some("an https upstream (its location answers 404 here)"),
            PassTarget::Unix => Some("a unix socket upstream (its location answers 404 here)"),
            PassTarget::Variables => Some("proxy_pass with variables (its location answers 404 here)"),
        }
    }
}

/// `proxy_pass` refused: nginx's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PassError {
    #[error("invalid URL prefix in \"{0}\"")]
    Prefix(String),
    #[error("{0} in upstream \"{1}\"")]
    Url(&'static str, String),
}

/// `ngx_http_proxy_pass`'s reading of its URL: variables first (the URL is
/// a script then, nothing else is checked), then the scheme (any case),
/// then the address as `ngx_http_upstream_add` parses it.
pub fn pass_target(url: &[u8]) -> Result<PassTarget, PassError> {
    if url.contains(&b'$') {
        return Ok(PassTarget::Variables);
    }
    pass_url(url)
}

/// A `proxy_pass` URL without variables (or a script's value), read as
/// `ngx_http_proxy_pass` / `ngx_http_proxy_eval` read it.
pub fn pass_url(url: &[u8]) -> Result<PassTarget, PassError> {
    let lower = url.to_ascii_lowercase();
    let (https, rest) = if lower.starts_with(b"http://") {
        (false, &url[7..])
    } else if lower.starts_with(b"https://") {
        (true, &url[8..])
    } else {
        return Err(PassError::Prefix(text(url)));
    };
    if rest.starts_with(b"unix:") {
        return Ok(PassTarget::Unix);
    }
    let u = parse_url(rest, false, true).map_err(|e| PassError::Url(e, text(rest)))?;
    let u = PassUrl { host: u.host, port: u.port, uri: u.uri };
    Ok(if https { PassTarget::Https(u) } else { PassTarget::Http(u) })
}

/// Parses nginx.conf text. `file` names it in error messages.
pub fn parse(src: &str, file: &str) -> Result<Config, ConfError> {
    parse_bytes(src.as_bytes(), file)
}

/// Parses nginx.conf bytes (any bytes inside tokens, as nginx allows);
/// host names are not resolved, and there are no files to include.
pub fn parse_bytes(src: &[u8], file: &str) -> Result<Config, ConfError> {
    parse_with(src, file, &|_, _| true)
}

/// [`parse_bytes`], resolving `listen` and upstream `server` host names with
/// `hosts` where nginx does, so a name that does not resolve is reported at
/// nginx's line, in nginx's order. There are no files to include.
pub fn parse_with(src: &[u8], file: &str, hosts: Hosts) -> Result<Config, ConfError> {
    parse_files(
        src,
        file,
        &Source {
            files: &include::NoFiles,
            prefix: String::new(),
            hosts,
        },
    )
}

/// Where the main file's `include`s and `load_module`s are looked up.
pub struct Source<'a> {
    /// The file system (`include`, `load_module`).
    pub files: &'a dyn Files,
    /// nginx's `-p` prefix, ending in `/` (for `load_module`).
    pub prefix: String,
    pub hosts: Hosts<'a>,
}

/// The conf prefix nginx derives from the main file's name (`-c`): its
/// directory, with the slash (`ngx_process_options`).
pub fn conf_prefix(file: &str) -> String {
    match file.rfind('/') {
        Some(i) => file[..=i].to_string(),
        None => String::new(),
    }
}

/// Parses a main configuration file read from `file`, following its
/// `include`s through `src.files` relative to [`conf_prefix`]`(file)`.
pub fn parse_files(bytes: &[u8], file: &str, src: &Source) -> Result<Config, ConfError> {
    let mut p = Parser {
        rd: Reader::new(bytes, file),
        stack: Vec::new(),
        depth: 0,
        base: 0,
        files: src.files,
        conf_prefix: conf_prefix(file),
        prefix: src.prefix.clone(),
        hosts: src.hosts,
        cfg: Config::default(),
        listens: Vec::new(),
        used_variables: Vec::new(),
        defined_variables: Vec::new(),
        http_seen: Seen::default(),
        worker_connections: 512,
    };
    p.main()?;
    Ok(p.cfg)
}

// ---- rendering ---------------------------------------------------------------

/// A snippet of nginx.conf text (the inside of an `upstream` or `location`
/// block, `ctx`) with the value of every time directive at its top level (a
/// msec or sec slot: `proxy_read_timeout`, `keepalive_timeout`, ...)
/// rewritten by `f`, and every other byte as written: comments, layout and
/// directives the lab does not emulate reach nginx unchanged. A sec slot
/// (`ngx_parse_time(.., 1)`) holds whole seconds: a scaled value rounds up.
/// Blocks inside the snippet are copied as they are.
pub fn rescale_times(src: &str, file: &str, ctx: Ctx, f: impl Fn(Duration) -> Duration) -> Result<String, ConfError> {
    let (module_type, cmd_type) = ctx.types();
    let mut r = Reader::new(src.as_bytes(), file);
    let mut out = String::with_capacity(src.len());
    let (mut copied, mut depth) = (0usize, 0usize);
    loop {
        let before = r.offset();
        let st = r.next_statement()?;
        match st.end {
            End::Eof => break,
            End::Open => depth += 1,
            End::Close => depth = depth.saturating_sub(1),
            End::Semi if depth == 0 && st.words.len() == 2 => {
                let Lookup::Found(d) = directive::lookup(&st.words[0], module_type, cmd_type) else { continue };
                let new = match d.slot {
                    Slot::Msec => time::parse_bytes(&st.words[1]).map(|v| time::format(f(v))),
                    Slot::Sec => time::parse_sec(&st.words[1]).map(|v| {
                        let v = f(v);
                        format!("{}s", v.as_secs() + u64::from(v.subsec_nanos() > 0))
                    }),
                    _ => None,
                };
                let Some(new) = new else { continue };
                // The statement starts after the blanks and comments before it.
                let start = statement_start(src.as_bytes(), before);
                out.push_str(&src[copied..start]);
                out.push_str(&format!("{} {new};", d.name));
                copied = r.offset();
            }
            End::Semi => {}
        }
    }
    out.push_str(&src[copied..]);
    Ok(out)
}

/// The first byte at or after `at` that is neither blank nor in a comment.
fn statement_start(src: &[u8], mut at: usize) -> usize {
    while at < src.len() {
        match src[at] {
            b' ' | b'\t' | b'\r' | b'\n' | b';' => at += 1,
            b'#' => at = src[at..].iter().position(|&b| b == b'\n').map_or(src.len(), |n| at + n),
            _ => break,
        }
    }
    at
}

fn q(s: &str) -> String {
    if s.is_empty() || s.contains(|c: char| c.is_whitespace() || c == ';' || c == '{' || c == '}' || c == '"' || c == '\'' || c == '$' || c == '\\' || c == '#') {
        format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
    } else {
        s.to_string()
    }
}

fn render_proxy(out: &mut String, p: &ProxyDirectives, indent: &str) {
    let mut line = |s: String| {
        out.push_str(indent);
        out.push_str(&s);
        out.push_str(";\n");
    };
    if let Some(v) = &p.pass {
        line(format!("proxy_pass {}", q(v)));
    }
    if let Some(v) = &p.http_version {
        line(format!("proxy_http_version {v}"));
    }
    if let Some(b) = &p.bind {
        line(format!("proxy_bind {}", b.as_deref().unwrap_or("off")));
    }
    if let Some(uri) = &p.auth_request {
        line(format!("auth_request {}", if uri.is_empty() { "off".to_string() } else { q(uri) }));
    }
    if let Some(on) = p.intercept_errors {
        line(format!("proxy_intercept_errors {}", if on { "on" } else { "off" }));
    }
    for e in p.error_pages.iter().flatten() {
        let codes: Vec<String> = e.codes.iter().map(|c| c.to_string()).collect();
        let over = match e.overwrite {
            None => String::new(),
            Some(0) => " =".into(),
            Some(n) => format!(" ={n}"),
        };
        line(format!("error_page {}{over} {}", codes.join(" "), q(&e.uri)));
    }
    for a in p.add_header.iter().flatten() {
        line(format!("add_header {} {}{}", q(&a.name), q(&a.value), if a.always { " always" } else { "" }));
    }
    for (k, v) in p.set_header.iter().flatten() {
        line(format!("proxy_set_header {} {}", q(k), q(v)));
    }
    if let Some(v) = p.connect_timeout {
        line(format!("proxy_connect_timeout {}", time::format(v)));
    }
    if let Some(v) = p.send_timeout {
        line(format!("proxy_send_timeout {}", time::format(v)));
    }
    if let Some(v) = p.read_timeout {
        line(format!("proxy_read_timeout {}", time::format(v)));
    }
    if let Some(v) = p.next_upstream {
        line(format!("proxy_next_upstream {}", v.keywords().join(" ")));
    }
    if let Some(v) = p.next_upstream_tries {
        line(format!("proxy_next_upstream_tries {v}"));
    }
    if let Some(v) = p.next_upstream_timeout {
        line(format!("proxy_next_upstream_timeout {}", time::format(v)));
    }
    if let Some(v) = p.request_buffering {
        line(format!("proxy_request_buffering {}", if v { "on" } else { "off" }));
    }
    if let Some(v) = p.buffering {
        line(format!("proxy_buffering {}", if v { "on" } else { "off" }));
    }
    if let Some(v) = p.buffer_size {
        line(format!("proxy_buffer_size {v}"));
    }
    if let Some((n, size)) = p.buffers {
        line(format!("proxy_buffers {n} {size}"));
    }
    if let Some(v) = p.busy_buffers_size {
        line(format!("proxy_busy_buffers_size {v}"));
    }
    if let Some(v) = p.max_temp_file_size {
        line(format!("proxy_max_temp_file_size {v}"));
    }
    if p.ignore_accel_buffering == Some(true) {
        line("proxy_ignore_headers X-Accel-Buffering".to_string());
    }
    if let Some(v) = p.temp_file_write_size {
        line(format!("proxy_temp_file_write_size {v}"));
    }
    if let Some(v) = p.client_max_body_size {
        line(format!("client_max_body_size {v}"));
    }
    if let Some(v) = p.client_body_buffer_size {
        line(format!("client_body_buffer_size {v}"));
    }
    if let Some(v) = p.server_tokens {
        line(format!("server_tokens {}", if v { "on" } else { "off" }));
    }
    if let Some((t, header)) = p.keepalive_timeout {
        match header {
            Some(h) => line(format!("keepalive_timeout {}ms {h}", t.as_millis())),
            None => line(format!("keepalive_timeout {}ms", t.as_millis())),
        }
    }
    if let Some(v) = p.keepalive_requests {
        line(format!("keepalive_requests {v}"));
    }
    if let Some(t) = p.keepalive_time {
        line(format!("keepalive_time {}ms", t.as_millis()));
    }
}

impl Config {
    /// Renders a complete nginx.conf that real nginx runs with
    /// `nginx -p PREFIX -c FILE`: pid and temp paths are prefix-relative.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# Rendered by badgateway-lab; read by real nginx and by the built-in proxy.\n");
        s.push_str("worker_processes 1;\npid nginx.pid;\n");
        if let Some(e) = &self.error_log {
            s.push_str(&format!("error_log {} info;\n", q(e)));
        }
        s.push_str("events {\n    worker_connections 1024;\n}\n\nhttp {\n");
        for t in ["client_body_temp_path", "fastcgi_temp_path", "uwsgi_temp_path", "scgi_temp_path"] {
            s.push_str(&format!("    {t} {};\n", t.trim_end_matches("_path")));
        }
        // The proxy's own default when none is named (nginx's built-in
        // `proxy_temp` with levels 1 2, under the prefix), so that a
        // response's temporary file has the same name in both.
        let (tp, levels) = self.proxy.temp_path.clone().unwrap_or_else(|| ("proxy_temp".to_string(), crate::buffering::DEFAULT_LEVELS));
        let levels: String = levels.iter().take_while(|l| **l > 0).map(|l| format!(" {l}")).collect();
        s.push_str(&format!("    proxy_temp_path {}{levels};\n", q(&tp)));
        for (name, fmt) in &self.log_formats {
            let escape = match self.log_escapes.iter().find(|(n, _)| n == name).map(|(_, e)| *e) {
                Some(crate::logs::LogEscape::Json) => "escape=json ",
                Some(crate::logs::LogEscape::None) => "escape=none ",
                _ => "",
            };
            s.push_str(&format!("    log_format {name} {escape}{};\n", q(fmt)));
        }
        for a in &self.access_log {
            s.push_str(&format!("    access_log {};\n", render_access(a)));
        }
        render_proxy(&mut s, &self.proxy, "    ");
        for u in &self.upstreams {
            s.push_str(&format!("\n    upstream {} {{\n", u.name));
            for srv in &u.servers {
                let mut l = format!("        server {}", srv.addr);
                if srv.weight != 1 {
                    l.push_str(&format!(" weight={}", srv.weight));
                }
                if srv.max_fails != 1 {
                    l.push_str(&format!(" max_fails={}", srv.max_fails));
                }
                if srv.fail_timeout != crate::resolve::defaults::FAIL_TIMEOUT {
                    // Seconds only (ngx_parse_time(.., 1)): a lab-scale
                    // sub-second value is written rounded up.
                    l.push_str(&format!(" fail_timeout={}s", srv.fail_timeout.as_secs() + u64::from(srv.fail_timeout.subsec_nanos() > 0)));
                }
                if srv.down {
                    l.push_str(" down");
                }
                if srv.backup {
                    l.push_str(" backup");
                }
                s.push_str(&l);
                s.push_str(";\n");
            }
            if let Some(text) = &u.verbatim {
                push_verbatim(&mut s, text);
                s.push_str("    }\n");
                continue;
            }
            if u.least_conn {
                s.push_str("        least_conn;\n");
            }
            if let Some(k) = u.keepalive {
                s.push_str(&format!("        keepalive {k};\n"));
            }
            if let Some(t) = u.keepalive_timeout {
                s.push_str(&format!("        keepalive_timeout {};\n", time::format(t)));
            }
            if let Some(r) = u.keepalive_requests {
                s.push_str(&format!("        keepalive_requests {r};\n"));
            }
            if let Some(t) = u.keepalive_time {
                s.push_str(&format!("        keepalive_time {};\n", time::format(t)));
            }
            s.push_str("    }\n");
        }
        for srv in &self.servers {
            s.push_str("\n    server {\n");
            for l in &srv.listen {
                s.push_str(&format!("        listen {l};\n"));
            }
            if let Some(n) = &srv.server_name {
                s.push_str(&format!("        server_name {n};\n"));
            }
            for a in &srv.access_log {
                s.push_str(&format!("        access_log {};\n", render_access(a)));
            }
            render_proxy(&mut s, &srv.proxy, "        ");
            if let Some(r) = &srv.ret {
                s.push_str(&format!("        {}\n", r.render()));
            }
            for loc in srv.locations.iter().chain(&srv.named) {
                let m = if loc.modifier.is_empty() { String::new() } else { format!("{} ", loc.modifier) };
                s.push_str(&format!("        location {m}{} {{\n", loc.path));
                for a in &loc.access_log {
                    s.push_str(&format!("            access_log {};\n", render_access(a)));
                }
                if let Some(r) = &loc.ret {
                    s.push_str(&format!("            {}\n", r.render()));
                }
                match &loc.verbatim {
                    Some(text) => {
                        let pass = ProxyDirectives { pass: loc.proxy.pass.clone(), ..ProxyDirectives::default() };
                        render_proxy(&mut s, &pass, "            ");
                        push_verbatim(&mut s, text);
                    }
                    None => render_proxy(&mut s, &loc.proxy, "            "),
                }
                s.push_str("        }\n");
            }
            s.push_str("    }\n");
        }
        s.push_str("}\n");
        s
    }
}

/// Snippet text inside a block, byte for byte (on lines of its own).
fn push_verbatim(s: &mut String, text: &str) {
    s.push_str(text);
    if !text.ends_with('\n') {
        s.push('\n');
    }
}

fn render_access(a: &AccessLog) -> String {
    match &a.path {
        None => "off".into(),
        Some(p) => format!("{} {}", q(p), a.format),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rescale_times_rewrites_time_values_and_keeps_every_other_byte() {
        let half = |d: Duration| d / 50;
        for (ctx, src, want) in [
            // msec slots: scaled; the rest as written, comments included.
            (Ctx::Location, "proxy_http_version 1.1;  # why\n    proxy_read_timeout 5s; # 100ms here\nproxy_buffering off;\n", "proxy_http_version 1.1;  # why\n    proxy_read_timeout 100ms; # 100ms here\nproxy_buffering off;\n"),
            (Ctx::Location, "proxy_connect_timeout '1m';proxy_next_upstream_timeout 0;", "proxy_connect_timeout 1200ms;proxy_next_upstream_timeout 0s;"),
            (Ctx::Upstream, "keepalive 16;\n# a comment; with a semicolon\nkeepalive_timeout 60s;\nkeepalive_time 1h;\n", "keepalive 16;\n# a comment; with a semicolon\nkeepalive_timeout 1200ms;\nkeepalive_time 72s;\n"),
            // A sec slot holds whole seconds: rounded up.
            (Ctx::Location, "open_file_cache_valid 5s;\n", "open_file_cache_valid 1s;\n"),
            // Not a time, or inside a block: untouched.
            (Ctx::Location, "proxy_read_timeout $x;\nlimit_except GET { proxy_read_timeout 5s; }\n", "proxy_read_timeout $x;\nlimit_except GET { proxy_read_timeout 5s; }\n"),
            (Ctx::Location, "", ""),
        ] {
            assert_eq!(rescale_times(src, "s", ctx, half).unwrap(), want, "{src:?}");
        }
        assert!(rescale_times("proxy_read_timeout 5s", "s", Ctx::Location, half).unwrap_err().msg.contains("unexpected end of file"));
    }

    /// Each row's expectation is what nginx 1.22.1 `-t` printed for the same
    /// text (the file named t.conf): the first `[emerg]` line, or `None` when
    /// it accepted the file. `@LONG@` stands for 5000 `x`s.
    #[test]
    fn nginx_t_table() {
        let rows: &[(&str, Option<&str>)] = &[
            ("events {}\nhttp {\n  bogus 1;\n}\n", Some("unknown directive \"bogus\" in t.conf:3")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  proxy_pass http://x;\n }\n}\n", Some("\"proxy_pass\" directive is not allowed here in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n  keepalive;\n  server 127.0.0.1:1;\n }\n}\n", Some("invalid number of arguments in \"keepalive\" directive in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_read_timeout\n 5x;\n}\n", Some("\"proxy_read_timeout\" directive invalid value in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_next_upstream error sometimes;\n}\n", Some("invalid value \"sometimes\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n\n", Some("unexpected end of file, expecting \"}\" in t.conf:6")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server\n", Some("unexpected end of file, expecting \";\" or \"}\" in t.conf:5")),
            ("events {}\nhttp { }\n}\n", Some("unexpected \"}\" in t.conf:3")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind 127.0.0.4:0; }\n }\n}\n", Some("invalid address \"127.0.0.4:0\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind nope; }\n }\n}\n", Some("invalid address \"nope\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind [::1]; }\n }\n}\n", Some("invalid address \"[::1]\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind 127.0.0.2:70000; }\n }\n}\n", Some("invalid address \"127.0.0.2:70000\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind 127.0.0.2 x; }\n }\n}\n", Some("invalid parameter \"x\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind 127.0.0.2; proxy_bind off; }\n }\n}\n", Some("\"proxy_bind\" directive is duplicate in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind 127.0.0.2:7000; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind ::1; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind [::1]:80; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind off; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location / { proxy_pass http://127.0.0.1:9; proxy_bind 127.0.0.2 transparent; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n }\n}\n", Some("no servers are inside upstream in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n  server 127.0.0.1:1 wieght=2;\n }\n}\n", Some("invalid parameter \"wieght=2\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n  server 127.0.0.1:1 weight=+2;\n }\n}\n", Some("invalid parameter \"weight=+2\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n  server 127.0.0.1:0;\n }\n}\n", Some("invalid port in upstream \"127.0.0.1:0\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n  server 127.0.0.1:1;\n  keepalive 0;\n }\n}\n", Some("invalid value \"0\" in \"keepalive\" directive in t.conf:6")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u {\n  server 127.0.0.1:1;\n  keepalive 1;\n  keepalive 2;\n }\n}\n", Some("\"keepalive\" directive is duplicate in t.conf:7")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_read_timeout 1s;\n proxy_read_timeout 2s;\n}\n", Some("\"proxy_read_timeout\" directive is duplicate in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  listen 127.0.0.1:0;\n }\n}\n", Some("invalid port in \"127.0.0.1:0\" of the \"listen\" directive in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  listen 80;\n  listen *:80;\n }\n}\n", Some("a duplicate listen 0.0.0.0:80 in t.conf:6")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  server_name;\n }\n}\n", Some("invalid number of arguments in \"server_name\" directive in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server\n {\n  listen 80;\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server;\n}\n", Some("directive \"server\" has no opening \"{\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n access_log a.log nope;\n}\n", Some("unknown log format \"nope\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location ~ ^/x { proxy_pass http://127.0.0.1:9/y; }\n }\n}\n", Some("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location @n { proxy_pass http://127.0.0.1:9/; }\n }\n}\n", Some("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location /a { if ($uri) { proxy_pass http://127.0.0.1:9/; } }\n }\n}\n", Some("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location /a { limit_except GET { proxy_pass http://127.0.0.1:9/x; } }\n }\n}\n", Some("\"proxy_pass\" cannot have URI part in location given by regular expression, or inside named location, or inside \"if\" statement, or inside \"limit_except\" block in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location ~ ^/x { proxy_pass http://127.0.0.1:9; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location ~ ^/x { proxy_pass http://127.0.0.1:9$uri; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location /a/ { proxy_pass http://127.0.0.1:9/b/; }\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n access_log a.log lab;\n log_format lab x;\n}\n", Some("unknown log format \"lab\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n log_format lab x;\n log_format lab y;\n}\n", Some("duplicate \"log_format\" name \"lab\" in t.conf:5")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n error_log e.log info warn;\n}\n", Some("duplicate log level \"warn\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n error_log e.log loud;\n}\n", Some("invalid log level \"loud\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n}\nhttp {\n}\n", Some("\"http\" directive is duplicate in t.conf:5")),
            ("http {\n}\n", Some("no \"events\" section in configuration")),
            ("", Some("no \"events\" section in configuration")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_request_buffering OFF;\n keepalive_requests 5000000000;\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffer_size 16k;\n server {\n  listen 80;\n }\n}\n", Some("\"proxy_busy_buffers_size\" must be less than the size of all \"proxy_buffers\" minus one buffer in t.conf:8")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffer_size 14k;\n server {\n  listen 80;\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffer_size 16k; proxy_buffers 8 16k;\n server {\n  listen 80;\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffers 1 4k;\n server {\n  listen 80;\n }\n}\n", Some("there must be at least 2 \"proxy_buffers\" in t.conf:8")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffers 0 4k;\n server {\n  listen 80;\n }\n}\n", Some("\"proxy_buffers\" directive invalid value in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffers 8 0;\n server {\n  listen 80;\n }\n}\n", Some("\"proxy_buffers\" directive invalid value in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffers 8 4k; proxy_buffers 8 4k;\n server {\n  listen 80;\n }\n}\n", Some("\"proxy_buffers\" directive is duplicate in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_busy_buffers_size 2k;\n server {\n  listen 80;\n }\n}\n", Some("\"proxy_busy_buffers_size\" must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\" in t.conf:8")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_busy_buffers_size 28k;\n server {\n  listen 80;\n }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_buffers x 4k;\n server {\n  listen 80;\n }\n}\n", Some("\"proxy_buffers\" directive invalid value in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n scgi_temp_path\\; x;\n}\n", Some("unknown directive \"scgi_temp_path\\;\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n default_type a\\;b;\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n default_type \"a\"b;\n}\n", Some("unexpected \"b\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n default_type 'a\n\nb\n;\n}\n", Some("unexpected end of file, expecting \";\" or \"}\" in t.conf:9")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n default_type a@LONG@;\n}\n", Some("too long parameter \"axxxxxxxxx...\" started in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n default_type a}b;\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  location /a { proxy_pass http://u; }\n  location /a { proxy_pass http://u; }\n }\n upstream u { server 127.0.0.1:1; }\n}\n", Some("duplicate location \"/a\" in t.conf:6")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u { server 127.0.0.1:1 fail_timeout=300ms; }\n}\n", Some("invalid parameter \"fail_timeout=300ms\" in t.conf:4")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server {\n  listen 127.0.0.1;\n  listen 8080 backlog=abc;\n }\n}\n", Some("invalid backlog \"backlog=abc\" in t.conf:6")),
            ("﻿events {}\n", Some("unknown directive \"﻿events\" in t.conf:1")),
            ("events {}\n\r\nhttp {\r\n}\r\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server { listen 80; location / { proxy_pass http://127.0.0.1:1; } location /x { proxy_pass http://127.0.0.1:1; } }\n}\n", None),
            ("events { worker_connections 0; }\n", Some("0 worker_connections are not enough for 0 listening sockets")),
            ("events { worker_connections 1; }\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server { listen 127.0.0.1:18001; }\n}\n", Some("1 worker_connections are not enough for 1 listening sockets")),
            ("events { worker_connections 2; }\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n server { listen 127.0.0.1:18001; }\n server { listen 127.0.0.1:18002; }\n}\n", Some("2 worker_connections are not enough for 2 listening sockets")),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n upstream u { server 127.0.0.1:1 \"fail_timeout=1m  30s\"; }\n}\n", None),
            ("events {}\nhttp {\n client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;\n proxy_set_header X $bogus_var;\n}\n", None),
        ];
        for (src, want) in rows {
            let src = src.replace("@LONG@", &"x".repeat(5000));
            let got = parse(&src, "t.conf").err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), *want, "{src:?}");
        }
    }

    fn parse_tree(files: &[(&str, &str)]) -> Result<Config, String> {
        let fs = crate::include::tests::MemFiles::with(files);
        let main = fs.0.get("/c/nginx.conf").cloned().unwrap_or_default();
        parse_files(
            &main,
            "/c/nginx.conf",
            &Source {
                files: &fs,
                prefix: "/p/".into(),
                hosts: &|_, _| true,
            },
        )
        .map_err(|e| e.to_string())
    }

    const TEMPS: &str = "client_body_temp_path ct; proxy_temp_path pt; fastcgi_temp_path ft; uwsgi_temp_path ut; scgi_temp_path st;";

    #[test]
    fn includes_follow_nginx() {
        let main = format!(
            "events {{}}\nhttp {{\n {TEMPS}\n include conf.d/*.conf;\n include mime.types;\n}}\n"
        );
        // Globs in file order (sorted), relative to the main file's directory.
        let cfg = parse_tree(&[
            ("/c/nginx.conf", &main),
            (
                "/c/mime.types",
                "types {\n text/html html;\n include more.types;\n}\n",
            ),
            ("/c/more.types", "text/css css;\n"),
            (
                "/c/conf.d/b.conf",
                "server { listen 127.0.0.1:2; location / { proxy_pass http://u; } }\n",
            ),
            (
                "/c/conf.d/a.conf",
                "upstream u {\n include /c/servers.inc;\n}\n",
            ),
            ("/c/servers.inc", "server 127.0.0.1:9;\n"),
        ])
        .unwrap();
        assert_eq!(cfg.upstreams[0].servers[0].addr, "127.0.0.1:9");
        assert_eq!(cfg.upstreams[0].servers[0].pos.file, "/c/servers.inc");
        assert_eq!(cfg.servers[0].listen, vec!["127.0.0.1:2"]);
        // Errors name the included file and its line.
        let bad = [
            ("/c/nginx.conf", main.as_str()),
            ("/c/mime.types", "types {}\n"),
            ("/c/conf.d/a.conf", "\n\ngzip on;\ngzip_comp_level 10;\n"),
        ];
        assert_eq!(
            parse_tree(&bad),
            Err("value must be between 1 and 9 in /c/conf.d/a.conf:4".into())
        );
        // A missing plain file is an error at the include line; a glob that matches nothing is not.
        let missing = format!("events {{}}\nhttp {{\n {TEMPS}\n include nothing/*.conf;\n include missing.conf;\n}}\n");
        assert_eq!(parse_tree(&[("/c/nginx.conf", &missing)]), Err("open() \"/c/missing.conf\" failed (2: No such file or directory) in /c/nginx.conf:5".into()));
        // An included file is parsed on its own: its `}` cannot close the includer's block,
        // and a block it opens must close in it.
        let brace = [
            ("/c/nginx.conf", main.as_str()),
            ("/c/mime.types", "types {}\n"),
            ("/c/conf.d/a.conf", "}\n"),
        ];
        assert_eq!(
            parse_tree(&brace),
            Err("unexpected \"}\" in /c/conf.d/a.conf:1".into())
        );
        let open = [
            ("/c/nginx.conf", main.as_str()),
            ("/c/mime.types", "types {}\n"),
            ("/c/conf.d/a.conf", "server {\n"),
        ];
        assert_eq!(
            parse_tree(&open),
            Err("unexpected end of file, expecting \"}\" in /c/conf.d/a.conf:2".into())
        );
        // types' include takes exactly one file and does not glob.
        let types = [
            ("/c/nginx.conf", main.as_str()),
            ("/c/mime.types", "types { include a b; }\n"),
        ];
        assert_eq!(
            parse_tree(&types),
            Err("invalid number of arguments in \"include\" directive in /c/mime.types:1".into())
        );
    }

    #[test]
    fn an_include_cycle_ends_with_an_error() {
        let err = parse_tree(&[("/c/nginx.conf", "include nginx.conf;\n")]).unwrap_err();
        assert!(
            err.starts_with("open() \"/c/nginx.conf\" failed (24: Too many open files"),
            "{err}"
        );
        assert!(err.ends_with(" in /c/nginx.conf:1"), "{err}");
    }

    #[test]
    fn worker_processes_count_auto_default_and_bad_values() {
        let wp = |main: &str| parse(&format!("{main}events {{}}\nhttp {{}}\n"), "t.conf").map(|c| c.worker_processes).map_err(|e| e.to_string());
        assert_eq!(wp(""), Ok(WorkerProcesses::Count(1)), "nginx's default");
        assert_eq!(wp("worker_processes 4;\n"), Ok(WorkerProcesses::Count(4)));
        assert_eq!(wp("worker_processes auto;\n"), Ok(WorkerProcesses::Auto));
        assert_eq!(wp("worker_processes two;\n"), Err("\"worker_processes\" directive invalid value in t.conf:1".into()));
        assert_eq!(wp("worker_processes 1;\nworker_processes 2;\n"), Err("\"worker_processes\" directive is duplicate in t.conf:2".into()));
    }

    #[test]
    fn directive_table_contexts_and_arguments() {
        let http = |body: &str| {
            parse(
                &format!("events {{}}\nhttp {{\n {TEMPS}\n{body}\n}}\n"),
                "t.conf",
            )
            .err()
            .map(|e| e.to_string())
        };
        assert_eq!(http("gzip on; gzip_types text/css; types_hash_max_size 2048; ssl_protocols TLSv1.2 TLSv1.3;"), None);
        assert_eq!(http("gzip maybe;"), Some("invalid value \"maybe\" in \"gzip\" directive, it must be \"on\" or \"off\" in t.conf:4".into()));
        assert_eq!(
            http("gzip on;\ngzip off;"),
            Some("\"gzip\" directive is duplicate in t.conf:5".into())
        );
        assert_eq!(
            http("gzip;"),
            Some("invalid number of arguments in \"gzip\" directive in t.conf:4".into())
        );
        assert_eq!(
            http("gzpi on;"),
            Some("unknown directive \"gzpi\" in t.conf:4".into())
        );
        assert_eq!(
            http("upstream u { server 127.0.0.1:1; gzip on; }"),
            Some("\"gzip\" directive is not allowed here in t.conf:4".into())
        );
        assert_eq!(
            http("worker_processes 2;"),
            Some("\"worker_processes\" directive is not allowed here in t.conf:4".into())
        );
        assert_eq!(
            http("geoip_country c.dat;"),
            Some("unknown directive \"geoip_country\" in t.conf:4".into()),
            "a dynamic module nginx-light does not load"
        );
        assert_eq!(http("server { location / { if ($uri) { return 404; } limit_except GET { deny all; } } }"), None);
        assert_eq!(
            http("server { location / { limit_except GET { gzip on; } } }"),
            Some("\"gzip\" directive is not allowed here in t.conf:4".into())
        );
        assert_eq!(
            http("server { if ($uri) { location / {} } }"),
            Some("\"location\" directive is not allowed here in t.conf:4".into())
        );
        assert_eq!(
            http("server { return 1000; }"),
            Some("invalid return code \"1000\" in t.conf:4".into())
        );
        assert_eq!(
            http("map $uri $a { default 1;\n default 2; }"),
            Some("duplicate default map parameter in t.conf:5".into())
        );
        assert_eq!(
            http("map $uri $a { a b c; }"),
            Some("invalid number of the map parameters in t.conf:4".into())
        );
        assert_eq!(
            http("map $uri $a { x { } }"),
            Some("unexpected \"{\" in t.conf:4".into())
        );
        assert_eq!(
            http("split_clients $uri $v { 60% a; 50% b; }"),
            Some("percent total is greater than 100% in t.conf:4".into())
        );
        // Variables: defined by map/set/geo/split_clients/named captures, known to log_format.
        assert_eq!(http("map $uri $m { default 1; }\ngeo $g { default 1; }\nlog_format f '$m $g $time_iso8601 $request_id';"), None);
        assert_eq!(
            http("log_format f '$nope';"),
            Some("unknown \"nope\" variable".into())
        );
        assert_eq!(
            http("server { set $s 1; location ~ ^/(?<tail>.*)$ { return 200 \"$s $tail $1\"; } }"),
            None
        );
        assert_eq!(
            http("server { return 200 $undefined; }"),
            Some("unknown \"undefined\" variable".into())
        );
    }

    /// `set`, `map`, `geo` and `split_clients` define `$name`s; anything
    /// else is nginx's "invalid variable name" at the directive's line.
    #[test]
    fn defined_variables_need_a_dollar() {
        let http = |body: &str| parse(&format!("events {{}}\nhttp {{\n {TEMPS}\n{body}\n}}\n"), "t.conf").err().map(|e| e.to_string());
        let bad = |v: &str| Some(format!("invalid variable name \"{v}\" in t.conf:4"));
        assert_eq!(http("server { set s 1; }"), bad("s"));
        assert_eq!(http("map $uri m { default 1; }"), bad("m"));
        assert_eq!(http("geo $remote_addr g { default 1; }"), bad("g"));
        assert_eq!(http("split_clients $uri c { * a; }"), bad("c"));
        assert_eq!(http("server { set $s 1; }\nmap $uri $m { default 1; }\ngeo $g { default 1; }\nsplit_clients $uri $c { * a; }\nlog_format f '$s$m$g${c}';"), None);
    }

    /// The directives this parser reads itself refuse a value with the
    /// same words as the generic slots of nginx's table (one check each).
    #[test]
    fn own_directives_use_the_slot_checks() {
        let http = |body: &str| parse(&format!("events {{}}\nhttp {{\n {TEMPS}\n{body}\n}}\n"), "t.conf").unwrap_err().to_string();
        assert_eq!(http("proxy_request_buffering maybe;"), "invalid value \"maybe\" in \"proxy_request_buffering\" directive, it must be \"on\" or \"off\" in t.conf:4");
        assert_eq!(http("server_tokens maybe;"), "invalid value \"maybe\" in t.conf:4");
        assert_eq!(http("keepalive_requests x;"), "\"keepalive_requests\" directive invalid number in t.conf:4");
        assert_eq!(http("proxy_buffer_size x;"), "\"proxy_buffer_size\" directive invalid value in t.conf:4");
        assert_eq!(http("proxy_read_timeout x;"), "\"proxy_read_timeout\" directive invalid value in t.conf:4");
        assert_eq!(http("server { proxy_temp_path p 0; }"), "\"proxy_temp_path\" directive invalid value in t.conf:4");
        assert_eq!(http("server { proxy_temp_path p 5 5 1; }"), "\"proxy_temp_path\" directive invalid value in t.conf:4");
        // The same words from the generic slots.
        assert_eq!(http("gzip maybe;"), "invalid value \"maybe\" in \"gzip\" directive, it must be \"on\" or \"off\" in t.conf:4");
    }

    #[test]
    fn read_ahead_directives() {
        let at = |extra: &str| parse(&format!("events {{}}\nhttp {{\n{extra}\n server {{ location / {{ proxy_pass http://127.0.0.1:1; }} }}\n}}\n"), "t.conf").map(|c| c.proxy).map_err(|e| e.msg);
        let p = at("proxy_max_temp_file_size 0; proxy_temp_file_write_size 16k; proxy_temp_path pt 1 2;").unwrap();
        assert_eq!((p.max_temp_file_size, p.temp_file_write_size, p.temp_path), (Some(0), Some(16384), Some(("pt".to_string(), [1, 2, 0]))));
        for (extra, err) in [
            ("proxy_max_temp_file_size 1k;", "\"proxy_max_temp_file_size\" must be equal to zero to disable temporary files usage or must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\""),
            ("proxy_temp_file_write_size 2k;", "\"proxy_temp_file_write_size\" must be equal to or greater than the maximum of the value of \"proxy_buffer_size\" and one of the \"proxy_buffers\""),
            ("proxy_max_temp_file_size 2g;", "\"proxy_max_temp_file_size\" directive invalid value"),
        ] {
            assert!(at(extra).is_err_and(|m| m.starts_with(err)), "{extra}: {:?}", at(extra));
        }
        assert!(at("proxy_max_temp_file_size 4k; proxy_temp_file_write_size 8k;").is_ok());
        // proxy_ignore_headers: lines add up; a level without one inherits.
        let c = parse("events {}\nhttp {\n proxy_ignore_headers Expires;\n server { proxy_ignore_headers x-accel-buffering; proxy_ignore_headers Vary; location / { proxy_pass http://127.0.0.1:1; } }\n}\n", "t.conf").unwrap();
        assert_eq!(c.proxy.ignore_accel_buffering, Some(false));
        assert_eq!(c.servers[0].proxy.ignore_accel_buffering, Some(true));
        assert_eq!(c.servers[0].locations[0].proxy.merged_over(&c.servers[0].proxy.merged_over(&c.proxy)).ignore_accel_buffering, Some(true));
        assert!(at("proxy_ignore_headers X-Nope;").is_err_and(|m| m.starts_with("invalid value \"X-Nope\"")));
    }

    #[test]
    fn zone_and_resolver_are_accepted_without_a_note() {
        let src = "events {}\nhttp {\n resolver 127.0.0.1 valid=30s;\n resolver_timeout 5s;\n upstream u { zone u 64k; server 127.0.0.1:1; }\n server { location / { proxy_pass http://u; resolver 127.0.0.2; } }\n}\n";
        let cfg = parse(src, "t.conf").unwrap();
        assert!(cfg.not_emulated.0.is_empty(), "{:?}", cfg.not_emulated.0);
        // nginx's own checks still apply: zone takes a name and an optional size.
        assert!(parse("events {}\nhttp { upstream u { zone; server 127.0.0.1:1; } }\n", "t.conf").is_err());
    }

    #[test]
    fn not_emulated_directives_are_listed_once() {
        let cfg = parse(&format!("events {{}}\nhttp {{\n {TEMPS}\n gzip on;\n server {{ gzip off; sendfile on; }}\n}}\n"), "t.conf").unwrap();
        let names: Vec<&str> = cfg.not_emulated.0.iter().map(|s| s.as_str()).collect();
        assert_eq!(
            names,
            [
                "client_body_temp_path",
                "fastcgi_temp_path",
                "gzip",
                "scgi_temp_path",
                "sendfile",
                "uwsgi_temp_path"
            ]
        );
    }

    /// Each nested block is a level of recursion: past the emulation limit
    /// the file is refused at the `{` that goes too deep, on a thread with
    /// the default 2 MiB stack, not by a stack overflow.
    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let nested = |n: usize, inner: &str| {
            format!(
                "events {{}}\nhttp {{\n {TEMPS}\n server {{\n{}{inner}{}}}\n}}\n",
                "location / {\n".repeat(n),
                "}\n".repeat(n)
            )
        };
        let deep = nested(10_000, "");
        let err = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(&deep, "t.conf").map(|_| ()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        // http and server are 2 levels, so the limit is reached by the
        // location on line MAX_BLOCK_DEPTH - 2 + 4.
        assert_eq!(
            err.unwrap_err().to_string(),
            format!("too deeply nested blocks (emulation limit {MAX_BLOCK_DEPTH}) in t.conf:{}", MAX_BLOCK_DEPTH + 3)
        );
        // Up to the limit, nesting is read as nginx reads it (if{} too).
        let ok = nested(MAX_BLOCK_DEPTH - 3, "if ($uri) { return 404; }\n");
        let r = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || parse(&ok, "t.conf").map(|_| ()))
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(r, Ok(()));
    }

    #[test]
    fn ipv6_listen_addresses() {
        let cfg = parse(&format!("events {{}}\nhttp {{\n {TEMPS}\n server {{ listen [::]:8080; listen [::1]; }}\n}}\n"), "t.conf").unwrap();
        assert_eq!(cfg.servers[0].listen, vec!["[::]:8080", "[::1]:80"]);
    }

    #[test]
    fn tokenizer_unescapes_as_nginx() {
        let words = |src: &[u8]| {
            let mut r = Reader::new(src, "t.conf");
            r.next_statement().unwrap().words
        };
        assert_eq!(words(br#"a "\"\'\\\t\d" b\;c;"#), vec![b"a".to_vec(), b"\"'\\\t\\d".to_vec(), b"b\\;c".to_vec()]);
        assert_eq!(words(b"x\xe9\x00y 'a b';"), vec![b"x\xe9\x00y".to_vec(), b"a b".to_vec()]);
        assert_eq!(words(b"${a}b c}d;"), vec![b"${a}b".to_vec(), b"c}d".to_vec()]);
    }

    #[test]
    fn fixture_parses() {
        let src = include_str!("../../../fixtures/nginx.conf");
        let cfg = parse(src, "fixtures/nginx.conf").unwrap();
        assert_eq!(cfg.upstreams[0].keepalive, Some(16));
        assert_eq!(cfg.servers[0].locations[0].proxy.pass.as_deref(), Some("http://go_upstream"));
    }

    #[test]
    fn render_round_trips() {
        let src = include_str!("../../../fixtures/nginx.conf");
        let cfg = parse(src, "fixtures/nginx.conf").unwrap();
        let again = parse(&cfg.render(), "rendered").unwrap();
        assert_eq!(cfg, again);
    }
}

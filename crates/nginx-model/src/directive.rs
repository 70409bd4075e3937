//! nginx's directive table and the checks `ngx_conf_handler` makes with it.
//!
//! The table itself (`directives.rs`) is generated from nginx 1.22.1's
//! source by `tools/directives.py`: one row per `ngx_command_t`, with the
//! module, the `type` bits, and what kind of `set` handler it has. This file
//! is what nginx does with a row: find the directive for a context
//! (`ngx_conf_handler`'s loop over modules), check the argument count, and,
//! for the generic `ngx_conf_set_*_slot` handlers (`ngx_conf_file.c`), check
//! the value and the duplicate rule as the slot does. Custom handlers
//! (`ngx_http_core_listen`, `ngx_http_rewrite_return`, ...) are checked in
//! `conf.rs` where the emulation or the corpus needs them; the others are
//! accepted as they are (see docs/ARCHITECTURE.md, known differences).

pub use crate::directives::DIRECTIVES;
use crate::{num, time};
use std::time::Duration;

/// A module's type (`NGX_CORE_MODULE`, ...): a directive is looked up only
/// in modules of the block's type, and in `NGX_CONF_MODULE` (`include`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ModType {
    Core,
    Conf,
    Event,
    Http,
    Stream,
    Mail,
}

/// Which configuration structure a slot writes (`NGX_HTTP_*_CONF_OFFSET`):
/// a `Main` slot set in a server block is the http{} block's value, so its
/// duplicates count across the whole http{} block.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Level {
    Main,
    Srv,
    Loc,
    /// Core and event modules: the module's own structure.
    Own,
}

/// The `set` handler, when it is one of nginx's generic slots.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Slot {
    Flag,
    Str,
    /// `ngx_conf_set_str_array_slot`, `_keyval_slot`: repeatable.
    Multi,
    Num,
    /// `ngx_conf_set_num_slot` with an `ngx_conf_check_num_bounds` post.
    NumBounded(i64, i64),
    Size,
    Off,
    Msec,
    Sec,
    Bufs,
    Enum(&'static [&'static str]),
    Bitmask(&'static [&'static str]),
    Path,
    Access,
    /// `ngx_http_set_complex_value_slot` (and its size/zero variants).
    Complex,
    /// A module's own handler.
    Custom,
}

#[derive(Clone, Copy, Debug)]
pub struct Directive {
    pub name: &'static str,
    pub module: &'static str,
    pub module_type: ModType,
    /// Compiled into Debian's nginx-light 1.22.1 (not a dynamic module).
    pub built: bool,
    /// `ngx_command_t.type`: context bits, argument bits, `NGX_CONF_BLOCK`.
    pub ty: u32,
    pub slot: Slot,
    pub level: Level,
    /// The field the slot sets (module and `offsetof`): duplicates are per field.
    pub field: &'static str,
    /// The C handler's name, for messages and documentation.
    pub handler: &'static str,
}

// ngx_conf_file.h / ngx_http_config.h bits.
pub const NOARGS: u32 = 0x1;
pub const ARGS_NUMBER: u32 = 0xff;
pub const BLOCK: u32 = 0x100;
pub const FLAG: u32 = 0x200;
pub const ANY: u32 = 0x400;
pub const MORE1: u32 = 0x800;
pub const MORE2: u32 = 0x1000;
pub const MAIN_CONF: u32 = 0x0100_0000;
pub const EVENT_CONF: u32 = 0x0200_0000;
pub const HTTP_MAIN_CONF: u32 = 0x0200_0000;
pub const HTTP_SRV_CONF: u32 = 0x0400_0000;
pub const HTTP_LOC_CONF: u32 = 0x0800_0000;
pub const HTTP_UPS_CONF: u32 = 0x1000_0000;
pub const HTTP_SIF_CONF: u32 = 0x2000_0000;
pub const HTTP_LIF_CONF: u32 = 0x4000_0000;
pub const HTTP_LMT_CONF: u32 = 0x8000_0000;

/// What `ngx_conf_handler` finds for a name in a block.
#[derive(Debug)]
pub enum Lookup {
    Found(&'static Directive),
    /// The name exists (in a built module) but not for this block:
    /// `"X" directive is not allowed here`.
    NotAllowed,
    /// `unknown directive "X"` (also a directive of a module nginx-light
    /// does not build, such as `stream`).
    Unknown,
}

/// `ngx_conf_handler`'s search: the first row of a built module whose name
/// matches, whose module type is the block's (or `NGX_CONF_MODULE`), and
/// whose context bits include the block's.
pub fn lookup(name: &[u8], module_type: ModType, cmd_type: u32) -> Lookup {
    let mut found = false;
    for d in DIRECTIVES
        .iter()
        .filter(|d| d.built && d.name.as_bytes() == name)
    {
        found = true;
        if d.module_type != ModType::Conf && d.module_type != module_type {
            continue;
        }
        if d.ty & cmd_type == 0 {
            continue;
        }
        return Lookup::Found(d);
    }
    if found {
        Lookup::NotAllowed
    } else {
        Lookup::Unknown
    }
}

/// The directive a module of the standard set defines under this name but
/// nginx-light does not build (for an honest note next to nginx's
/// `unknown directive`).
pub fn not_built(name: &[u8]) -> Option<&'static Directive> {
    if DIRECTIVES
        .iter()
        .any(|d| d.built && d.name.as_bytes() == name)
    {
        return None;
    }
    DIRECTIVES
        .iter()
        .find(|d| !d.built && d.name.as_bytes() == name)
}

/// `ngx_conf_handler`'s argument count check; `nargs` excludes the name.
pub fn args_ok(ty: u32, nargs: usize) -> bool {
    if ty & ANY != 0 {
        return true;
    }
    if ty & FLAG != 0 {
        return nargs == 1;
    }
    if ty & MORE1 != 0 {
        return nargs >= 1;
    }
    if ty & MORE2 != 0 {
        return nargs >= 2;
    }
    // NGX_CONF_MAX_ARGS is 8 words with the name; argument_number[n] is bit n.
    nargs < 8 && ty & (1 << nargs) & ARGS_NUMBER != 0
}

/// The result of a generic slot: `Err` is what the slot returns (nginx
/// prints it as `"NAME" directive MSG`) or a message logged on its own
/// (`Own`).
#[derive(Debug, PartialEq, Eq)]
pub enum SlotError {
    /// `"NAME" directive {0}` (`return "is duplicate"`, `"invalid value"`, ...).
    Directive(String),
    /// A message of its own (`ngx_conf_log_error` then `NGX_CONF_ERROR`).
    Own(String),
}

/// A token as nginx prints it with `%s`: up to the first NUL, lossy UTF-8.
pub(crate) fn show(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Whether a slot refuses a second value for its field (every slot but the
/// array, keyval and bitmask ones, which add up; and custom handlers, which
/// decide themselves).
pub fn has_duplicate_rule(slot: Slot) -> bool {
    !matches!(slot, Slot::Multi | Slot::Bitmask(_) | Slot::Custom)
}

/// `ngx_conf_set_flag_slot`: `on` or `off`, any case.
pub fn flag(name: &str, a: &[u8]) -> Result<bool, SlotError> {
    if a.eq_ignore_ascii_case(b"on") {
        Ok(true)
    } else if a.eq_ignore_ascii_case(b"off") {
        Ok(false)
    } else {
        Err(SlotError::Own(format!(
            "invalid value \"{}\" in \"{name}\" directive, it must be \"on\" or \"off\"",
            show(a)
        )))
    }
}

/// `ngx_conf_set_num_slot`.
pub fn num(a: &[u8]) -> Result<i64, SlotError> {
    num::atoi(a).ok_or_else(|| SlotError::Directive("invalid number".into()))
}

/// `ngx_conf_set_size_slot`.
pub fn size(a: &[u8]) -> Result<i64, SlotError> {
    num::parse_size(a).ok_or_else(invalid_value)
}

/// `ngx_conf_set_msec_slot`.
pub fn msec(a: &[u8]) -> Result<Duration, SlotError> {
    time::parse_bytes(a).ok_or_else(invalid_value)
}

/// `ngx_conf_set_enum_slot`: the index of the value, any case.
pub fn enumerated(values: &[&str], a: &[u8]) -> Result<usize, SlotError> {
    values
        .iter()
        .position(|v| v.as_bytes().eq_ignore_ascii_case(a))
        .ok_or_else(|| SlotError::Own(format!("invalid value \"{}\"", show(a))))
}

/// `ngx_conf_set_path_slot`: a path, then up to three levels, each a
/// positive number.
pub fn path(args: &[Vec<u8>]) -> Result<(), SlotError> {
    let mut total = 0i64;
    for l in &args[1.min(args.len())..] {
        match num::atoi(l) {
            Some(n) if n > 0 => total = total.saturating_add(n),
            _ => return Err(invalid_value()),
        }
    }
    // ngx_conf_set_path_slot: the levels' digits come from the file's ten.
    if total > 10 {
        return Err(invalid_value());
    }
    Ok(())
}

fn invalid_value() -> SlotError {
    SlotError::Directive("invalid value".into())
}

/// The value check of a generic slot (`ngx_conf_set_flag_slot`, ...), the
/// duplicate rule aside.
pub fn check_slot(name: &str, slot: Slot, args: &[Vec<u8>]) -> Result<(), SlotError> {
    let invalid = invalid_value;
    let a0 = args.first().map(|a| a.as_slice()).unwrap_or(b"");
    match slot {
        Slot::Flag => {
            flag(name, a0)?;
        }
        Slot::Num => {
            num(a0)?;
        }
        Slot::NumBounded(lo, hi) => {
            let n = num(a0)?;
            // ngx_conf_check_num_bounds (logs its own message); -1 as the upper
            // bound means "no upper bound".
            if hi == -1 && n < lo {
                return Err(SlotError::Own(format!(
                    "value must be equal to or greater than {lo}"
                )));
            }
            if hi != -1 && (n < lo || n > hi) {
                return Err(SlotError::Own(format!(
                    "value must be between {lo} and {hi}"
                )));
            }
        }
        Slot::Size => {
            size(a0)?;
        }
        Slot::Off => {
            num::parse_offset(a0).ok_or_else(invalid)?;
        }
        Slot::Msec => {
            msec(a0)?;
        }
        Slot::Sec => {
            time::ngx_parse_time(a0, true).ok_or_else(invalid)?;
        }
        Slot::Bufs => {
            num::atoi(a0).filter(|n| *n != 0).ok_or_else(invalid)?;
            let a1 = args.get(1).map(|a| a.as_slice()).unwrap_or(b"");
            num::parse_size(a1)
                .filter(|n| *n != 0)
                .ok_or_else(invalid)?;
        }
        Slot::Enum(values) => {
            enumerated(values, a0)?;
        }
        Slot::Bitmask(values) => {
            for a in args {
                if !values.iter().any(|v| v.as_bytes().eq_ignore_ascii_case(a)) {
                    return Err(SlotError::Own(format!("invalid value \"{}\"", show(a))));
                }
            }
        }
        Slot::Path => path(args)?,
        Slot::Access => {
            // ngx_conf_set_access_slot: user:rw|r, group:rw|r, all:rw|r.
            for a in args {
                let rights = a
                    .strip_prefix(b"user:")
                    .or_else(|| a.strip_prefix(b"group:"))
                    .or_else(|| a.strip_prefix(b"all:"));
                if !matches!(rights, Some(b"r" | b"rw")) {
                    return Err(SlotError::Own(format!("invalid value \"{}\"", show(a))));
                }
            }
        }
        Slot::Str | Slot::Multi | Slot::Complex | Slot::Custom => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(name: &str, m: ModType, ctx: u32) -> Option<&'static Directive> {
        match lookup(name.as_bytes(), m, ctx) {
            Lookup::Found(d) => Some(d),
            _ => None,
        }
    }

    #[test]
    fn contexts_as_ngx_conf_handler() {
        assert!(
            found("gzip", ModType::Http, HTTP_LIF_CONF).is_some(),
            "gzip is allowed in if-in-location"
        );
        assert!(matches!(
            lookup(b"gzip", ModType::Http, HTTP_UPS_CONF),
            Lookup::NotAllowed
        ));
        assert!(matches!(
            lookup(b"gzip", ModType::Core, MAIN_CONF),
            Lookup::NotAllowed
        ));
        assert!(matches!(
            lookup(b"gzipp", ModType::Http, HTTP_LOC_CONF),
            Lookup::Unknown
        ));
        // include (NGX_CONF_MODULE, NGX_ANY_CONF) is found in every block.
        for (m, c) in [
            (ModType::Core, MAIN_CONF),
            (ModType::Event, EVENT_CONF),
            (ModType::Http, HTTP_UPS_CONF),
            (ModType::Http, HTTP_LMT_CONF),
        ] {
            assert_eq!(
                found("include", m, c).map(|d| d.module),
                Some("ngx_conf_module")
            );
        }
        // The same name in two modules: the block's module type decides.
        assert_eq!(
            found("server", ModType::Http, HTTP_MAIN_CONF).map(|d| d.module),
            Some("ngx_http_core_module")
        );
        assert_eq!(
            found("server", ModType::Http, HTTP_UPS_CONF).map(|d| d.module),
            Some("ngx_http_upstream_module")
        );
        assert_eq!(
            found("error_log", ModType::Core, MAIN_CONF).map(|d| d.module),
            Some("ngx_errlog_module")
        );
        assert_eq!(
            found("keepalive_timeout", ModType::Http, HTTP_UPS_CONF).map(|d| d.module),
            Some("ngx_http_upstream_keepalive_module")
        );
        // Not built into nginx-light: unknown, as nginx-light says.
        assert!(matches!(
            lookup(b"stream", ModType::Core, MAIN_CONF),
            Lookup::Unknown
        ));
        assert_eq!(
            not_built(b"stream").map(|d| d.module),
            Some("ngx_stream_module")
        );
        assert!(matches!(
            lookup(b"geoip_country", ModType::Http, HTTP_MAIN_CONF),
            Lookup::Unknown
        ));
        assert!(not_built(b"gzip").is_none());
    }

    #[test]
    fn argument_counts_as_ngx_conf_handler() {
        let ty = |n: &str, m, c| found(n, m, c).unwrap().ty;
        let user = ty("user", ModType::Core, MAIN_CONF);
        assert!(args_ok(user, 1) && args_ok(user, 2) && !args_ok(user, 0) && !args_ok(user, 3));
        let gzip = ty("gzip", ModType::Http, HTTP_MAIN_CONF);
        assert!(args_ok(gzip, 1) && !args_ok(gzip, 0) && !args_ok(gzip, 2));
        let lf = ty("log_format", ModType::Http, HTTP_MAIN_CONF);
        assert!(args_ok(lf, 2) && args_ok(lf, 20) && !args_ok(lf, 1));
        let events = ty("events", ModType::Core, MAIN_CONF);
        assert!(events & BLOCK != 0 && args_ok(events, 0) && !args_ok(events, 1));
        let add_header = ty("add_header", ModType::Http, HTTP_LOC_CONF);
        assert!(args_ok(add_header, 2) && args_ok(add_header, 3) && !args_ok(add_header, 4));
    }

    #[test]
    fn generic_slots_check_values() {
        let flag = Slot::Flag;
        assert_eq!(check_slot("gzip", flag, &[b"On".to_vec()]), Ok(()));
        assert_eq!(
            check_slot("gzip", flag, &[b"yes".to_vec()]),
            Err(SlotError::Own(
                "invalid value \"yes\" in \"gzip\" directive, it must be \"on\" or \"off\"".into()
            ))
        );
        let lvl = found("gzip_comp_level", ModType::Http, HTTP_LOC_CONF)
            .unwrap()
            .slot;
        assert_eq!(lvl, Slot::NumBounded(1, 9));
        assert_eq!(
            check_slot("gzip_comp_level", lvl, &[b"10".to_vec()]),
            Err(SlotError::Own("value must be between 1 and 9".into()))
        );
        let bufs = found("gzip_buffers", ModType::Http, HTTP_LOC_CONF)
            .unwrap()
            .slot;
        assert_eq!(
            check_slot("gzip_buffers", bufs, &[b"16".to_vec(), b"8k".to_vec()]),
            Ok(())
        );
        assert!(check_slot("gzip_buffers", bufs, &[b"0".to_vec(), b"8k".to_vec()]).is_err());
        let protos = found("ssl_protocols", ModType::Http, HTTP_SRV_CONF)
            .unwrap()
            .slot;
        assert_eq!(
            check_slot(
                "ssl_protocols",
                protos,
                &[b"TLSv1.2".to_vec(), b"tlsv1.3".to_vec()]
            ),
            Ok(())
        );
        assert!(check_slot("ssl_protocols", protos, &[b"TLSv9".to_vec()]).is_err());
        assert!(check_slot("send_timeout", Slot::Msec, &[b"1y".to_vec()]).is_err());
    }
}

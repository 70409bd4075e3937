//! upstream-sim seen from the wire: every Go rule the emulator implements,
//! probed with a raw TCP client, one trial per probe (the table is in
//! common/mod.rs; `cargo test -p harness --test wire -- idle`).

mod common;

use harness::UpstreamBackend;
use libtest_mimic::{Failed, Trial};
use std::process::ExitCode;

fn main() -> ExitCode {
    let trials = common::probes()
        .into_iter()
        .map(|p| {
            Trial::test(common::trial_name(&p), move || {
                let o = common::block_on(common::run_probe(p.clone(), UpstreamBackend::Builtin));
                let bad = common::check(&p, &o);
                if bad.is_empty() {
                    Ok(())
                } else {
                    Err(Failed::from(bad.join("; ")))
                }
            })
        })
        .collect();
    // Each probe has its own server and port, and its timing windows leave
    // room for two at a time.
    libtest_mimic::run(&common::arguments(2), trials).exit_code()
}

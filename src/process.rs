//! Process hygiene at start: no core dumps, not ptrace-able by other users, private files.

use nix::sys::resource::{setrlimit, Resource};
use nix::sys::stat::{umask, Mode};

/// What [`harden`] managed to do; failures are reported, not fatal, except where noted.
#[derive(Debug, Default)]
pub struct Hardening {
    pub core_dumps_disabled: bool,
    pub non_dumpable: bool,
    pub mlock_ok: bool,
    pub mlock_error: Option<String>,
}

/// Sets `RLIMIT_CORE=0`, `PR_SET_DUMPABLE=0` and umask 077, and probes `mlock` unless disabled.
pub fn harden(disable_mlock: bool) -> Hardening {
    let mut h = Hardening::default();
    umask(Mode::from_bits_truncate(0o077));
    h.core_dumps_disabled = setrlimit(Resource::RLIMIT_CORE, 0, 0).is_ok();
    h.non_dumpable = nix::sys::prctl::set_dumpable(false).is_ok();
    coffer_storage::keys::locked::set_enabled(!disable_mlock);
    if disable_mlock {
        h.mlock_ok = false;
    } else {
        match coffer_storage::keys::locked::probe() {
            Ok(()) => h.mlock_ok = true,
            Err(e) => h.mlock_error = Some(e.to_string()),
        }
    }
    h
}

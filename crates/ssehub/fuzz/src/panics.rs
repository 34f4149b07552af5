//! The panic hook of the fuzz targets, which include this file (it is not
//! part of the library: the replay test keeps the test harness's hook).
//!
//! libfuzzer-sys makes every panic abort at once, caught or not, so that a
//! crash report keeps its stack. ssehub catches the panics of the URL
//! pattern crate on purpose (a pattern it cannot parse is refused, see
//! `proto::selector::urlpattern`): those unwind to that catch, and every
//! other panic still aborts.

/// Installs the hook; each target calls it once, before the first input.
pub fn install() {
    let aborting = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let in_urlpattern = info
            .location()
            .is_some_and(|at| at.file().contains("/urlpattern-"));
        if !in_urlpattern {
            aborting(info);
        }
    }));
}

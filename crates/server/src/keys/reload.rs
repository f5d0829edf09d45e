//! Reloading the keys file: on SIGHUP, and when its contents change.
//!
//! The file is re-read every [`POLL_INTERVAL`] and reloaded when its bytes differ from the
//! last ones loaded. Polling the contents rather than watching inodes also follows the
//! symlink swap by which Kubernetes updates a mounted Secret, which inotify-style watches
//! on the file miss; the file is small, so reading it every two seconds costs nothing.
//! A file that fails to parse is reported and the previous keys stay in force.

use std::sync::Arc;
use std::time::Duration;

use super::KeyRing;

/// How often the keys file is re-read.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Reloads `ring` from its file now if the contents differ from `last` (or `force`).
fn reload_if_changed(ring: &KeyRing, last: &mut Option<Vec<u8>>, force: bool) {
    let Some(path) = ring.file() else { return };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            if force || last.is_some() {
                eprintln!("jikji serve: cannot read the keys file {}: {e}; keeping the loaded keys", path.display());
                *last = None;
            }
            return;
        }
    };
    if !force && last.as_deref() == Some(&bytes[..]) {
        return;
    }
    let text = String::from_utf8_lossy(&bytes);
    match ring.reload_from(&text) {
        Ok(n) => eprintln!("jikji serve: reloaded the keys file {} ({n} key(s) in force)", path.display()),
        Err(e) => eprintln!("jikji serve: {e}; keeping the previous keys"),
    }
    *last = Some(bytes);
}

/// Starts the reload task (needs a Tokio runtime): SIGHUP forces a reload, the poll
/// reloads on a change. Does nothing without a keys file.
pub fn spawn(ring: Arc<KeyRing>) {
    let Some(path) = ring.file().map(|p| p.to_path_buf()) else { return };
    tokio::spawn(async move {
        let mut last = std::fs::read(&path).ok();
        #[cfg(unix)]
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(POLL_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            let forced = match hup.as_mut() {
                Some(h) => tokio::select! {
                    _ = h.recv() => true,
                    _ = tick.tick() => false,
                },
                None => {
                    tick.tick().await;
                    false
                }
            };
            #[cfg(not(unix))]
            let forced = {
                tick.tick().await;
                false
            };
            reload_if_changed(&ring, &mut last, forced);
        }
    });
}

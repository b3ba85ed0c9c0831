//! How `apply` and `plan` show a run while it works: a live line per host on a terminal, and
//! each host's report printed as soon as that host is done. Also the Ctrl-C policy: the first
//! asks the engine to stop, the second quits at once.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::progress::{Cancel, Event, Reporter};
use crate::engine::report::{self, HostReport};
use crate::output;

/// Exit code after a second Ctrl-C (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The reporter of `apply` and `plan`.
pub struct Live {
    /// Live lines, when stderr is a terminal.
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// `Some(check)`: print each host's human report when it is done.
    human: Option<bool>,
}

impl Live {
    /// A reporter; `human` prints each host's report as it is done (`Some(check)`), the JSON
    /// report waits for the end (`None`).
    pub fn new(human: Option<bool>) -> Self {
        let multi = std::io::stderr().is_terminal().then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Live { multi, bars: Mutex::new(HashMap::new()), human }
    }

    fn bar(&self, multi: &MultiProgress, host: &str) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(host.to_string())
            .or_insert_with(|| {
                let pb = multi.add(ProgressBar::new_spinner());
                pb.set_style(
                    ProgressStyle::with_template("{spinner} {prefix} {msg} ({elapsed})")
                        .unwrap_or_else(|_| ProgressStyle::default_spinner()),
                );
                pb.set_prefix(host.to_string());
                pb.enable_steady_tick(Duration::from_millis(120));
                pb
            })
            .clone()
    }

    /// Clears every live line (before the final report).
    pub fn clear(&self) {
        let bars = std::mem::take(&mut *self.bars.lock().unwrap_or_else(|e| e.into_inner()));
        for pb in bars.into_values() {
            pb.finish_and_clear();
        }
    }

    /// Runs `f` with the live lines out of the way (printing below them would garble both).
    pub fn suspend<T>(&self, f: impl FnOnce() -> T) -> T {
        match &self.multi {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }
}

impl Reporter for Live {
    fn event(&self, host: &str, event: &Event) {
        if let Some(multi) = &self.multi {
            self.bar(multi, host).set_message(event.to_string());
        }
    }

    fn finished(&self, r: &HostReport) {
        if let Some(pb) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).remove(&r.host) {
            pb.finish_and_clear();
        }
        if let Some(check) = self.human {
            self.suspend(|| output::out(&report::host_text(r, check)));
        }
    }
}

/// Watches Ctrl-C on a thread of its own, so it is answered at once even while every worker
/// of the runtime is busy: the first sets `cancel` and says what happens now; the second exits.
pub fn watch_ctrl_c(cancel: Cancel) {
    let spawned = std::thread::Builder::new().name("ctrl-c".into()).spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_io().build() else { return };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_ok() {
                cancel.cancel();
                // A local archive being hashed stops between chunks.
                crate::resources::digest::cancel();
                eprintln!("\ninterrupted: finishing what hosts are already applying; nothing new starts (Ctrl-C again to quit now)");
                if tokio::signal::ctrl_c().await.is_ok() {
                    std::process::exit(EXIT_INTERRUPTED);
                }
            }
        });
    });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch Ctrl-C: {e}");
    }
}

//! Confirmation of destructive actions (`certs rotate`, deleting runners from GitLab): a question
//! on a terminal, `--yes` otherwise. Without a terminal and without `--yes` the action is refused:
//! a script must say what it wants, never get a destruction by default.

use std::io::{BufRead, IsTerminal, Write};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static ASSUME_YES: AtomicBool = AtomicBool::new(false);
/// Runs the question with live progress lines held (see [`hold_output_with`]).
type Guard = Box<dyn Fn(&mut dyn FnMut()) + Send + Sync>;
static GUARD: std::sync::OnceLock<Guard> = std::sync::OnceLock::new();

/// Installs how to hold the command's live lines while a question is on the terminal (their
/// redraws would otherwise erase it, and the run would look hung on an invisible prompt).
pub fn hold_output_with(guard: impl Fn(&mut dyn FnMut()) + Send + Sync + 'static) {
    let _ = GUARD.set(Box::new(guard));
}
/// Hosts resolve concurrently: one question at a time on the terminal.
static PROMPT: Mutex<()> = Mutex::new(());

/// Why a destructive action does not go ahead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Declined {
    /// The user answered something other than yes.
    #[error("not confirmed")]
    No,
    /// No terminal to ask on and no `--yes`.
    #[error("it needs a confirmation: run it on a terminal, or pass --yes")]
    NoTerminal,
}

/// `--yes` was given: every confirmation is granted without asking.
pub fn assume_yes(yes: bool) {
    ASSUME_YES.store(yes, Ordering::SeqCst);
}

/// Asks `question` (a yes/no question, without the `[y/N]`) on stderr and reads the answer from
/// the terminal; `Ok(())` only for yes. Blocking: call it from async code with `spawn_blocking`.
pub fn confirm(question: &str) -> Result<(), Declined> {
    if ASSUME_YES.load(Ordering::SeqCst) {
        return Ok(());
    }
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Err(Declined::NoTerminal);
    }
    let _one = PROMPT.lock().unwrap_or_else(|e| e.into_inner());
    let mut answer = Err(Declined::No);
    let mut ask = || {
        eprint!("{question} [y/N] ");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if std::io::stdin().lock().read_line(&mut line).is_ok() && matches!(line.trim(), "y" | "Y" | "yes" | "YES" | "Yes") {
            answer = Ok(());
        }
    };
    match GUARD.get() {
        Some(guard) => guard(&mut ask),
        None => ask(),
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_terminal_and_without_yes_it_is_refused() {
        // cargo test runs without a terminal on stdin (captured / CI).
        if std::io::stdin().is_terminal() {
            return;
        }
        // (`--yes` is process-wide: not toggled here, other tests run in parallel.)
        assert_eq!(confirm("delete everything?"), Err(Declined::NoTerminal));
    }
}

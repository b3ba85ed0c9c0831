//! `provision completions bash|zsh|fish` and `provision man`: generated from the same clap
//! definitions as the parser, so they never drift from the flags.

use clap::CommandFactory;

use crate::cli::{Cli, Shell};
use crate::error::{Error, Result};

/// Prints the completion script for `shell` on stdout.
pub fn completions(shell: Shell) -> Result<i32> {
    let generator = match shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(generator, &mut cmd, "provision", &mut out);
    write_stdout(&out)
}

/// Prints the man page (roff) on stdout.
pub fn man() -> Result<i32> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut out).map_err(|e| Error::Other(format!("cannot render the man page: {e}")))?;
    write_stdout(&out)
}

fn write_stdout(bytes: &[u8]) -> Result<i32> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    // A closed pipe (`| head`) is not an error worth a message.
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Ok(()) => Ok(0),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(e) => Err(Error::Other(format!("cannot write to stdout: {e}"))),
    }
}

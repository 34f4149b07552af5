//! `ssehub completions SHELL`: the completion script of a shell, printed.

use clap_complete::Shell;

/// Prints `command`'s completion script for `shell` on stdout.
pub(super) fn print(shell: Shell, command: &mut clap::Command) {
    clap_complete::generate(shell, command, "ssehub", &mut std::io::stdout());
}

//! Files of the repository and the external programs that check them
//! (`systemd-analyze`, `promtool`): a missing program fails the test,
//! naming the package to install, rather than skipping it.

use std::path::PathBuf;
use std::process::{Command, Output};

/// A file or directory of the repository, from its root.
pub(crate) fn repo_path(relative: &str) -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../..")).join(relative)
}

/// Runs `cmd` to completion; panics, naming `package`, if its program is
/// not installed.
pub(crate) fn run(mut cmd: Command, package: &str) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "{program} is not installed: this test needs it (Debian package {package}; \
             scripts/install-deps.sh installs it)"
        ),
        Err(e) => panic!("running {program}: {e}"),
    }
}

/// Both outputs of a program, for assertions and failure messages.
pub(crate) fn printed(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

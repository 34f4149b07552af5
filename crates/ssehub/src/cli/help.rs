//! The examples at the end of each subcommand's `--help`.

/// `ssehub serve --help`.
pub(super) const SERVE: &str = "\
Examples:
  ssehub serve                                   # http://127.0.0.1:8080, prints tokens to try it
  ssehub serve --listen 0.0.0.0:80 --publisher-jwt-key \"$KEY\"
  SSEHUB_LISTEN=[::]:8080 ssehub serve --config /etc/ssehub.toml";

/// `ssehub token --help`.
pub(super) const TOKEN: &str = "\
Examples:
  ssehub token --publish '*' --subscribe '*'     # may publish and receive everything
  ssehub token --subscribe 'https://example.com/books/{id}' --exp 1h
  export SSEHUB_TOKEN=$(ssehub token --publish '*')";

/// `ssehub publish --help`.
pub(super) const PUBLISH: &str = "\
Examples:
  export SSEHUB_TOKEN=$(ssehub token --publish '*')
  ssehub publish --topic https://example.com/demo --data hello
  echo '{\"stock\": 3}' | ssehub publish --hub https://hub.example --topic https://example.com/books/1 --private
  ssehub publish --topic a --topic b --data-file update.json --type update --json

Prints the id the hub gave the update. Exit status: 0 published, 1 refused or unreachable (the message says why and what to do), 2 bad command line.";

/// `ssehub subscribe --help`.
pub(super) const SUBSCRIBE: &str = "\
Examples:
  export SSEHUB_TOKEN=$(ssehub token --subscribe '*')
  ssehub subscribe --topic https://example.com/demo
  ssehub subscribe --topic 'https://example.com/books/{id}' --last-event-id earliest --format json
  ssehub subscribe --topic https://example.com/demo --since 2026-12-02T08:00:00Z   # what was published since
  ssehub subscribe --topic https://example.com/demo --rewind 10                    # the last 10 updates, then live
  ssehub subscribe --hub https://127.0.0.1:8443 --pin-spki sha256/BASE64 --match https://example.com/demo --count 1

Reconnects after a drop with the last id seen, waiting the hub's retry: time (1s if none), doubled after each failed attempt up to 30s, plus up to half again at random. Stops on 400, 401, 403 and 404, and on a TLS failure. Exit status: 0 after Ctrl-C, SIGTERM or --count events, 1 refused, 2 bad command line.";

/// `ssehub completions --help`.
pub(super) const COMPLETIONS: &str = "\
Examples:
  ssehub completions bash > ~/.local/share/bash-completion/completions/ssehub
  ssehub completions zsh > ~/.zfunc/_ssehub         # with fpath+=(~/.zfunc) in ~/.zshrc
  ssehub completions fish > ~/.config/fish/completions/ssehub.fish";

//! The two generations of the Mercure protocol a hub speaks, and which of
//! them it is configured to accept.

use std::fmt;
use std::str::FromStr;

/// The generation a request or a token speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Generation {
    /// Mercure 0.x: `topic=` selectors, the `mercure` claim, `lastEventID`,
    /// JSON-LD subscription documents.
    Legacy,
    /// Mercure 1.0: `match=` matchers, `at+jwt` access tokens with
    /// `authorization_details`, `last_event_id`, plain JSON documents.
    V1,
}

impl fmt::Display for Generation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Generation::Legacy => "Mercure 0.x",
            Generation::V1 => "Mercure 1.0",
        })
    }
}

/// Which generations the hub accepts (`--protocol 0|1|both`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// 0.x only.
    Legacy,
    /// 1.0 only.
    V1,
    /// Both at once, each request and token read in its own generation.
    Both,
}

impl Protocol {
    /// Whether requests and tokens of `generation` are accepted.
    pub fn allows(self, generation: Generation) -> bool {
        match self {
            Protocol::Both => true,
            Protocol::Legacy => generation == Generation::Legacy,
            Protocol::V1 => generation == Generation::V1,
        }
    }

    /// The error for something of `generation` this hub does not accept.
    pub fn refuse(self, generation: Generation, what: &str) -> String {
        format!(
            "{what} is {generation}, which this hub does not accept (it runs --protocol {self})"
        )
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Legacy => "0",
            Protocol::V1 => "1",
            Protocol::Both => "both",
        })
    }
}

impl FromStr for Protocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Protocol, String> {
        match s.trim() {
            "0" | "0.x" => Ok(Protocol::Legacy),
            "1" | "1.0" => Ok(Protocol::V1),
            "both" => Ok(Protocol::Both),
            other => Err(format!("unknown protocol {other:?}: use 0, 1 or both")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_allows() {
        assert_eq!("both".parse::<Protocol>().unwrap(), Protocol::Both);
        assert_eq!("0".parse::<Protocol>().unwrap(), Protocol::Legacy);
        assert_eq!("1".parse::<Protocol>().unwrap(), Protocol::V1);
        assert!("2".parse::<Protocol>().is_err());
        assert!(Protocol::Both.allows(Generation::V1));
        assert!(!Protocol::Legacy.allows(Generation::V1));
        assert!(!Protocol::V1.allows(Generation::Legacy));
        assert!(Protocol::V1
            .refuse(Generation::Legacy, "the topic= parameter")
            .contains("--protocol 1"));
    }
}

//! Placeholder for the WHATWG URL Pattern matcher (replaced by the helper's version).

use urlpattern::{UrlPattern, UrlPatternInit, UrlPatternMatchInput};

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 1024;

/// Why a URL pattern cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// Longer than [`MAX_PATTERN_LEN`].
    #[error("URL pattern too long: {0} bytes, at most {MAX_PATTERN_LEN}")]
    TooLong(usize),
    /// Not a valid URL pattern.
    #[error("invalid URL pattern: {0}")]
    Invalid(String),
}

/// A compiled URL pattern and the base it resolves against.
pub struct UrlPatternMatcher {
    text: String,
    pattern: UrlPattern,
    base: url::Url,
}

impl std::fmt::Debug for UrlPatternMatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("UrlPatternMatcher")
            .field(&self.text)
            .finish()
    }
}

impl UrlPatternMatcher {
    /// Compiles `pattern`, relative ones resolved against `base`.
    pub fn compile(pattern: &str, base: &url::Url) -> Result<UrlPatternMatcher, PatternError> {
        if pattern.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong(pattern.len()));
        }
        let invalid = |e: urlpattern::Error| PatternError::Invalid(e.to_string());
        let init =
            UrlPatternInit::parse_constructor_string::<regex::Regex>(pattern, Some(base.clone()))
                .map_err(invalid)?;
        let compiled = <UrlPattern>::parse(init, Default::default()).map_err(invalid)?;
        Ok(UrlPatternMatcher {
            text: pattern.to_string(),
            pattern: compiled,
            base: base.clone(),
        })
    }

    /// Whether `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        let Ok(url) = self.base.join(topic) else {
            return false;
        };
        self.pattern
            .test(UrlPatternMatchInput::Url(url))
            .unwrap_or(false)
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

//! Token keys from a JSON Web Key Set (RFC 7517) that rotate without a
//! restart (`--publisher-jwks-url`, `--subscriber-jwks-url`).
//!
//! A [`Jwks`] caches the usable keys of one set, read from an `https://`
//! URL or a `file://` path ([`fetch`]). The set is read:
//!
//! - at start-up, and a failure then stops start-up with an error naming
//!   the URL (a set that cannot be read at start is nearly always a typo);
//! - every [`Settings::refresh`] (`--jwks-refresh`), so removed keys stop
//!   verifying;
//! - when a token names a `kid` the cache lacks, unless the set was read
//!   (or reading it was tried) less than [`Settings::min_refresh`] ago
//!   (`--jwks-min-refresh`): tokens with made-up `kid`s cannot make the
//!   hub hammer the source. Concurrent tokens share one read.
//!
//! While the source cannot be read, or serves something that is not a set
//! with a usable key, the keys read before keep verifying tokens; the log
//! says so once when that starts and once when the source is back.
//!
//! Which key verifies a token (see [`set`]): the token's `alg` must be in
//! the allowlist ([`Settings::algorithms`], `--jwt-algorithms`), the key is
//! the one its `kid` names (without a `kid`, the only key fitting its
//! `alg`), and the key must fit that `alg`: RSA keys verify RS*/PS*, P-256
//! keys ES256, P-384 keys ES384, Ed25519 keys EdDSA, and a key that
//! declares its own `alg` verifies only that one. So an RSA public key is
//! never used as an HMAC secret. Symmetric (`oct`) keys are never used: a
//! secret published in a key set is no secret. Keys for encryption, of
//! unsupported curves, or whose `alg` is not allowed are skipped, with a
//! warning when the set changes.

pub mod fetch;
mod set;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, Header};
use parking_lot::RwLock;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use self::fetch::{FetchError, Source, SourceError};
use self::set::KeySet;
pub use self::set::NoKey;

/// How key sets are read and which of their keys are used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Token algorithms accepted; keys for other algorithms are never used.
    pub algorithms: Vec<Algorithm>,
    /// Interval of periodic reads; zero reads only at start and for
    /// unknown `kid`s.
    pub refresh: Duration,
    /// Age below which a set is not read again for an unknown `kid`.
    pub min_refresh: Duration,
    /// Extra PEM CA certificates trusted for `https://` sources, besides
    /// the system's roots.
    pub ca_cert: Option<PathBuf>,
}

/// Why a key set cannot be used at start-up.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The URL or the CA file is unusable.
    #[error("invalid JWKS URL {url}: {error}")]
    Source {
        /// The configured URL.
        url: String,
        /// What is wrong.
        error: SourceError,
    },
    /// The set could not be read, or is no set with a usable key.
    #[error("cannot use the JWKS at {url}: {error}")]
    Unreadable {
        /// The configured URL.
        url: String,
        /// What went wrong.
        error: ReadError,
    },
}

/// Why one read of a set gave no usable keys.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The document could not be read.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The document is not a JWK set.
    #[error("not a JWK set: {0}")]
    NotASet(#[from] serde_json::Error),
    /// No key of the set is usable.
    #[error("no usable key ({0})")]
    NoUsableKey(String),
}

/// The cached keys of one JWK set, refreshed in the background; cheap to
/// clone (clones share the cache). The periodic refresh stops when the
/// last clone is dropped.
#[derive(Clone)]
pub struct Jwks {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Jwks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwks")
            .field("source", &self.shared.source)
            .field("algorithms", &self.shared.algorithms)
            .finish_non_exhaustive()
    }
}

struct Shared {
    source: Source,
    algorithms: Vec<Algorithm>,
    min_refresh: Duration,
    keys: RwLock<Arc<KeySet>>,
    /// Reads tried so far; a token that waited for a read tells by it
    /// whether one happened meanwhile.
    reads: AtomicU64,
    /// Held while reading, so that reads never overlap.
    reader: tokio::sync::Mutex<Reader>,
    refresher: Option<AbortHandle>,
}

/// What the last reads found.
struct Reader {
    last_read: Instant,
    /// The last document read successfully, to log only changes.
    document: Vec<u8>,
    /// Whether the last read failed.
    down: bool,
}

/// What one read found (and logged).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Read {
    /// The same document as before.
    Unchanged,
    /// A new document, whose keys are now used.
    Changed,
    /// The first failure since the source was last read.
    Down,
    /// Another failure, not logged again.
    StillDown,
    /// Read after failing (its keys, changed or not, are now used).
    Back,
}

impl Jwks {
    /// Reads the set at `url` once, then keeps it fresh in the background.
    pub async fn load(url: &str, settings: &Settings) -> Result<Jwks, JwksError> {
        let source =
            Source::parse(url, settings.ca_cert.as_deref()).map_err(|error| JwksError::Source {
                url: url.to_string(),
                error,
            })?;
        let (document, keys) =
            read(&source, &settings.algorithms)
                .await
                .map_err(|error| JwksError::Unreadable {
                    url: url.to_string(),
                    error,
                })?;
        log_keys(&source, &keys);
        let shared = Arc::new_cyclic(|weak| Shared {
            refresher: (!settings.refresh.is_zero())
                .then(|| spawn_refresher(weak.clone(), settings.refresh)),
            source,
            algorithms: settings.algorithms.clone(),
            min_refresh: settings.min_refresh,
            keys: RwLock::new(Arc::new(keys)),
            reads: AtomicU64::new(0),
            reader: tokio::sync::Mutex::new(Reader {
                last_read: Instant::now(),
                document,
                down: false,
            }),
        });
        Ok(Jwks { shared })
    }

    /// The key verifying a token with `header`: the allowlist, then the
    /// cached key named by its `kid`; when the cache lacks that `kid`, the
    /// set is read again first (see the module documentation for when).
    pub async fn key_for(&self, header: &Header) -> Result<DecodingKey, NoKey> {
        let shared = &self.shared;
        if !shared.algorithms.contains(&header.alg) {
            return Err(NoKey::NotAllowed(header.alg));
        }
        let kid = header.kid.as_deref();
        let reads = shared.reads.load(Ordering::Acquire);
        match shared.current().find(kid, header.alg) {
            Err(NoKey::UnknownKid(_)) => {}
            found => return found.cloned(),
        }
        shared.read_for_unknown_kid(reads).await;
        shared.current().find(kid, header.alg).cloned()
    }
}

impl Shared {
    fn current(&self) -> Arc<KeySet> {
        self.keys.read().clone()
    }

    /// Reads the set unless a read happened since `reads` was loaded, or
    /// the last one is younger than `min_refresh`.
    async fn read_for_unknown_kid(&self, reads: u64) {
        let mut reader = self.reader.lock().await;
        if self.reads.load(Ordering::Acquire) == reads
            && reader.last_read.elapsed() >= self.min_refresh
        {
            self.read(&mut reader).await;
        }
    }

    /// Reads the set now (after any read under way).
    async fn refresh(&self) -> Read {
        let mut reader = self.reader.lock().await;
        self.read(&mut reader).await
    }

    /// Reads the set: new keys replace the cached ones, a failure keeps
    /// them; logs what changed.
    async fn read(&self, reader: &mut Reader) -> Read {
        let result = read(&self.source, &self.algorithms).await;
        reader.last_read = Instant::now();
        self.reads.fetch_add(1, Ordering::AcqRel);
        let (document, keys) = match result {
            Ok(read) => read,
            Err(error) if reader.down => {
                tracing::debug!("JWKS {} still cannot be used: {error}", self.source);
                return Read::StillDown;
            }
            Err(error) => {
                reader.down = true;
                tracing::warn!(
                    "JWKS {} cannot be used, keeping the keys read before ({}) until it can: {error}",
                    self.source,
                    self.current().kids().join(", ")
                );
                return Read::Down;
            }
        };
        let back = std::mem::replace(&mut reader.down, false);
        if back {
            tracing::info!("JWKS {} can be used again", self.source);
        }
        if document == reader.document {
            return if back { Read::Back } else { Read::Unchanged };
        }
        log_keys(&self.source, &keys);
        *self.keys.write() = Arc::new(keys);
        reader.document = document;
        if back {
            Read::Back
        } else {
            Read::Changed
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(refresher) = &self.refresher {
            refresher.abort();
        }
    }
}

/// Reads the set at `source` every `every`, as long as it is in use.
fn spawn_refresher(shared: Weak<Shared>, every: Duration) -> AbortHandle {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(shared) = shared.upgrade() else {
                return;
            };
            shared.refresh().await;
        }
    })
    .abort_handle()
}

/// Reads and parses the set at `source`: the document and its usable keys.
async fn read(source: &Source, allowed: &[Algorithm]) -> Result<(Vec<u8>, KeySet), ReadError> {
    let document = source.fetch().await?;
    let keys = KeySet::parse(&document, allowed)?;
    if keys.is_empty() {
        let why = match keys.skipped() {
            [] => "the set is empty".to_string(),
            skipped => skipped.join("; "),
        };
        return Err(ReadError::NoUsableKey(why));
    }
    Ok((document, keys))
}

/// Logs the keys now used, and why the others are not.
fn log_keys(source: &Source, keys: &KeySet) {
    tracing::info!("JWKS {source}: keys {}", keys.kids().join(", "));
    for skipped in keys.skipped() {
        tracing::warn!("JWKS {source}: skipped {skipped}");
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use jsonwebtoken::EncodingKey;
    use serde_json::{json, Value};

    pub(crate) use super::set::tests::p256;
    use super::set::tests::ASYMMETRIC;
    use super::*;

    /// A set in a file, rewritten at will.
    struct SetFile {
        _dir: tempfile::TempDir,
        path: PathBuf,
    }

    impl SetFile {
        fn new(keys: &[&Value]) -> SetFile {
            let dir = tempfile::tempdir().unwrap();
            let file = SetFile {
                path: dir.path().join("jwks.json"),
                _dir: dir,
            };
            file.write(keys);
            file
        }

        fn write(&self, keys: &[&Value]) {
            std::fs::write(&self.path, json!({ "keys": keys }).to_string()).unwrap();
        }

        fn url(&self) -> String {
            url::Url::from_file_path(&self.path).unwrap().to_string()
        }

        async fn load(&self, min_refresh: Duration) -> Jwks {
            let settings = Settings {
                algorithms: ASYMMETRIC.to_vec(),
                refresh: Duration::ZERO,
                min_refresh,
                ca_cert: None,
            };
            Jwks::load(&self.url(), &settings).await.unwrap()
        }
    }

    fn header(kid: &str) -> Header {
        Header {
            kid: Some(kid.to_string()),
            ..Header::new(Algorithm::ES256)
        }
    }

    #[tokio::test]
    async fn an_unknown_kid_reads_the_set_again_at_most_once_per_interval() {
        let (_, a) = p256("a", json!({}));
        let (_, b) = p256("b", json!({}));
        let (_, c) = p256("c", json!({}));
        let file = SetFile::new(&[&a]);
        let rate_limited = file.load(Duration::from_secs(3600)).await;
        let eager = file.load(Duration::ZERO).await;
        file.write(&[&a, &b]);
        // Read less than an hour ago: not read again.
        assert!(matches!(
            rate_limited.key_for(&header("b")).await,
            Err(NoKey::UnknownKid(_))
        ));
        assert!(eager.key_for(&header("b")).await.is_ok());
        let reads = || eager.shared.reads.load(Ordering::Acquire);
        assert_eq!(reads(), 1);
        // A known kid never causes a read: a is still used after removal.
        file.write(&[&b]);
        assert!(eager.key_for(&header("a")).await.is_ok());
        assert_eq!(reads(), 1);
        // An unknown one does, and then a is gone.
        assert!(eager.key_for(&header("c")).await.is_err());
        assert_eq!(reads(), 2);
        assert!(matches!(
            eager.key_for(&header("a")).await,
            Err(NoKey::UnknownKid(_))
        ));
        file.write(&[&b, &c]);
        assert!(eager.key_for(&header("c")).await.is_ok());
        assert_eq!(reads(), 4);
    }

    #[tokio::test]
    async fn the_allowlist_comes_before_any_read() {
        let (_, a) = p256("a", json!({}));
        let file = SetFile::new(&[&a]);
        let jwks = file.load(Duration::ZERO).await;
        let hs = Header {
            kid: Some("z".into()),
            ..Header::new(Algorithm::HS256)
        };
        assert!(matches!(
            jwks.key_for(&hs).await,
            Err(NoKey::NotAllowed(Algorithm::HS256))
        ));
        assert_eq!(jwks.shared.reads.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn while_the_source_is_down_the_cached_keys_verify_and_it_is_said_once() {
        let (_, a) = p256("a", json!({}));
        let (_, b) = p256("b", json!({}));
        let file = SetFile::new(&[&a]);
        let jwks = file.load(Duration::ZERO).await;
        let shared = &jwks.shared;
        std::fs::remove_file(&file.path).unwrap();
        assert_eq!(shared.refresh().await, Read::Down);
        assert_eq!(shared.refresh().await, Read::StillDown);
        std::fs::write(&file.path, "{\"keys\": []}").unwrap();
        assert_eq!(shared.refresh().await, Read::StillDown, "no usable key");
        std::fs::write(&file.path, "<html>").unwrap();
        assert_eq!(shared.refresh().await, Read::StillDown, "not a set");
        assert!(jwks.key_for(&header("a")).await.is_ok());
        file.write(&[&a]);
        assert_eq!(shared.refresh().await, Read::Back);
        assert_eq!(shared.refresh().await, Read::Unchanged);
        file.write(&[&b]);
        assert_eq!(shared.refresh().await, Read::Changed);
        assert!(jwks.key_for(&header("a")).await.is_err());
    }

    #[tokio::test]
    async fn start_up_fails_naming_the_url() {
        let file = SetFile::new(&[]);
        let settings = Settings {
            algorithms: ASYMMETRIC.to_vec(),
            refresh: Duration::ZERO,
            min_refresh: Duration::ZERO,
            ca_cert: None,
        };
        let err = Jwks::load(&file.url(), &settings).await.unwrap_err();
        let message = err.to_string();
        assert!(message.contains(&file.url()), "{message}");
        assert!(message.contains("the set is empty"), "{message}");
        let err = Jwks::load("http://idp.example/jwks.json", &settings)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("plain http:// is refused"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn the_set_is_read_periodically_until_dropped() {
        let (_, a) = p256("a", json!({}));
        let (_, b) = p256("b", json!({}));
        let file = SetFile::new(&[&a]);
        let settings = Settings {
            algorithms: ASYMMETRIC.to_vec(),
            refresh: Duration::from_millis(20),
            min_refresh: Duration::from_secs(3600),
            ca_cert: None,
        };
        let jwks = Jwks::load(&file.url(), &settings).await.unwrap();
        file.write(&[&b]);
        // Bounded: 500 waits of 20 ms, that is 500 periods.
        for waits in 0.. {
            if jwks.key_for(&header("a")).await.is_err() {
                break;
            }
            assert!(waits < 500, "no periodic read in 500 periods");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(jwks.key_for(&header("b")).await.is_ok());
        // The refresher holds the set only while reading it.
        let weak = Arc::downgrade(&jwks.shared);
        drop(jwks);
        for waits in 0.. {
            if weak.upgrade().is_none() {
                break;
            }
            assert!(waits < 500, "the set outlives its last clone");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_key_verifies_tokens_of_its_kid() {
        let (private, a) = p256("a", json!({"alg": "ES256", "use": "sig"}));
        let file = SetFile::new(&[&a]);
        let jwks = file.load(Duration::ZERO).await;
        let token = jsonwebtoken::encode(
            &header("a"),
            &json!({"sub": "x"}),
            &EncodingKey::from_ec_pem(private.as_bytes()).unwrap(),
        )
        .unwrap();
        let key = jwks.key_for(&header("a")).await.unwrap();
        let mut validation = jsonwebtoken::Validation::new(Algorithm::ES256);
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
        assert_eq!(data.claims["sub"], "x");
    }
}

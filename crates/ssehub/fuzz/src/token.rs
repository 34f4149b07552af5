//! Tokens (`auth::Verifier` with an HS256 key), then their claims.
//!
//! Input: a mode byte. Raw mode (even): the rest is a token string, sent to
//! the verifier as a request would. Signed mode (odd): a byte choosing the
//! header's `typ`, two bytes choosing a position, one a character, then a
//! JSON payload, signed with the verifier's key. Properties:
//!
//! * verifying never panics, whatever the string, and a token it accepts
//!   has claims that read as the claims target checks;
//! * a payload signed with the key verifies to itself (unless its `exp` or
//!   `nbf` refuse it, or it is not an object);
//! * that token with any one character changed does not verify.

use std::future::Future;
use std::task::{Context, Poll, Waker};

use serde_json::Value;
use ssehub::auth::{parse_algorithm, Signer, Verified, Verifier};

use super::claims::{read, TYPES};
use super::input::Input;

/// The HS256 secret of the targets' tokens.
pub(crate) const SECRET: &str = "ssehub-fuzz-secret";

/// Characters a signed token's character may be changed to.
const REPLACEMENTS: &[u8] = b"A_-.0zQw+/=";

/// Checks one input; see the module documentation.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let alg = parse_algorithm("HS256").expect("HS256 is supported");
    let verifier = Verifier::new(SECRET, alg).expect("an HMAC secret is a key");
    if input.byte().is_multiple_of(2) {
        let token = String::from_utf8_lossy(input.rest());
        if let Ok(verified) = verify(&verifier, &token) {
            read(verified.header.typ.as_deref(), &verified.payload);
        }
        return;
    }
    let typ = TYPES[usize::from(input.byte()) % TYPES.len()].unwrap_or("JWT");
    let at = usize::from(input.u16());
    let replacement = REPLACEMENTS[usize::from(input.byte()) % REPLACEMENTS.len()];
    let Ok(payload) = serde_json::from_slice::<Value>(input.rest()) else {
        return;
    };
    let signer = Signer::new(SECRET, alg).expect("an HMAC secret is a key");
    let token = signer.sign_json(typ, &payload);
    match verify(&verifier, &token) {
        Ok(verified) => {
            // What the token carries: the payload's JSON text, read again.
            let sent: Value = serde_json::from_str(&payload.to_string()).expect("JSON");
            assert_eq!(verified.payload, sent, "{token}");
            assert_eq!(verified.header.typ.as_deref(), Some(typ), "{token}");
            read(Some(typ), &verified.payload);
        }
        Err(e) => assert!(
            payload.get("exp").is_some() || payload.get("nbf").is_some() || !payload.is_object(),
            "{payload} signed refused: {e}"
        ),
    }
    let mut tampered = token.clone().into_bytes();
    let at = at % tampered.len();
    tampered[at] = replacement;
    let tampered = String::from_utf8(tampered).expect("ASCII");
    if tampered != token {
        assert!(
            verify(&verifier, &tampered).is_err(),
            "{token} verifies changed to {tampered}"
        );
    }
}

/// Verifies `token`: a configured key needs no waiting, so one poll ends it.
fn verify(verifier: &Verifier, token: &str) -> Result<Verified, ssehub::auth::TokenError> {
    let mut verifying = std::pin::pin!(verifier.verify(token));
    match verifying
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(verified) => verified,
        Poll::Pending => panic!("verifying with a configured key waited"),
    }
}

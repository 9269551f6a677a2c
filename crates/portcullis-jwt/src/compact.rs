//! Parsing the compact JWS serialization (RFC 7515 §7.1) strictly and without allocating:
//! three base64url segments, a JSON object header whose `alg` is supported and whose `crit` is
//! absent (RFC 8725 §3.1, RFC 7515 §4.1.11), and the decoded signature.

use std::borrow::Cow;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::Deserialize;

use crate::{Algorithm, TokenError, Validation};

/// The longest base64url header accepted (RFC 8725 §3.11: bounded work on untrusted input).
pub(crate) const MAX_HEADER_CHARS: usize = 2048;
/// The longest base64url signature accepted: an RSA-8192 signature is 1024 bytes.
pub(crate) const MAX_SIGNATURE_CHARS: usize = 1366;

pub(crate) struct Parsed<'a, 'b> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<Cow<'b, str>>,
    pub(crate) signing_input: &'a [u8],
    pub(crate) payload: &'a str,
    pub(crate) signature: &'b [u8],
}

/// Stack buffers for the decoded header and signature, so parsing allocates nothing.
pub(crate) struct Buffers {
    header: [u8; MAX_HEADER_CHARS * 3 / 4 + 3],
    signature: [u8; 1024],
}

impl Buffers {
    pub(crate) fn new() -> Self {
        Self {
            header: [0; MAX_HEADER_CHARS * 3 / 4 + 3],
            signature: [0; 1024],
        }
    }
}

#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow, default)]
    kid: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    typ: Option<Cow<'a, str>>,
    /// Present with *any* value, `null` included: `Option` would read `"crit": null` as absent.
    #[serde(default)]
    crit: Present,
}

/// Whether a header parameter appears at all, whatever its value.
#[derive(Default)]
pub(crate) struct Present(bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        serde::de::IgnoredAny::deserialize(deserializer).map(|_| Self(true))
    }
}

/// Splits and checks the compact serialization; decodes header and signature.
pub(crate) fn parse<'a, 'b>(
    token: &'a str,
    validation: &Validation,
    buffers: &'b mut Buffers,
) -> Result<Parsed<'a, 'b>, TokenError> {
    if token.len() > validation.max_token_bytes {
        return Err(TokenError::TooLarge);
    }
    let mut segments = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(TokenError::Malformed("expected three segments"));
    };
    if header.is_empty() || payload.is_empty() || signature.is_empty() {
        // An empty signature is how `alg: none` tokens look (RFC 7519 §6.1).
        return Err(TokenError::Malformed("empty segment"));
    }
    if header.len() > MAX_HEADER_CHARS || signature.len() > MAX_SIGNATURE_CHARS {
        return Err(TokenError::TooLarge);
    }
    let Buffers {
        header: header_bytes,
        signature: signature_bytes,
    } = buffers;
    // URL_SAFE_NO_PAD refuses padding, the standard alphabet and non-canonical trailing bits,
    // so every token has exactly one spelling.
    let header_len = URL_SAFE_NO_PAD
        .decode_slice(header, &mut *header_bytes)
        .map_err(|_| TokenError::Malformed("the header is not base64url"))?;
    let header_json = header_bytes
        .get(..header_len)
        .ok_or(TokenError::Malformed("the header is not base64url"))?;
    // serde would also read a struct from a JSON array; RFC 7515 §4 wants an object.
    if header_json.trim_ascii_start().first() != Some(&b'{') {
        return Err(TokenError::Malformed(
            "the header is not a valid JSON object",
        ));
    }
    let header: Header<'b> = serde_json::from_slice(header_json)
        .map_err(|_| TokenError::Malformed("the header is not a valid JSON object"))?;
    let alg = Algorithm::from_header(&header.alg).ok_or(TokenError::UnsupportedAlgorithm)?;
    // RFC 7515 §4.1.11: `crit` must be a non-empty array of extensions the recipient
    // understands. We understand none, so any `crit` at all (`null`, `[]`, a string, names)
    // is refused; RFC 8725 §3.1 / §2.8 on not trusting what a parser might skip.
    if header.crit.0 {
        return Err(TokenError::CriticalHeader);
    }
    if !validation.typ_matches(header.typ.as_deref()) {
        return Err(TokenError::WrongType);
    }
    let signature_len = URL_SAFE_NO_PAD
        .decode_slice(signature, &mut *signature_bytes)
        .map_err(|_| TokenError::Malformed("the signature is not base64url"))?;
    Ok(Parsed {
        alg,
        kid: header.kid,
        signing_input: token
            .as_bytes()
            .get(..header_len_in(token))
            .ok_or(TokenError::Malformed("expected three segments"))?,
        payload,
        signature: signature_bytes
            .get(..signature_len)
            .ok_or(TokenError::Malformed("the signature is not base64url"))?,
    })
}

/// The length of `header.payload`, the JWS signing input (RFC 7515 §5.2).
pub(crate) fn header_len_in(token: &str) -> usize {
    token.rfind('.').unwrap_or(0)
}

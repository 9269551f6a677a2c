//! Key sets fetched from a JWKS URL (RFC 7517 §5, as published at an OpenID Connect `jwks_uri`
//! or an OAuth authorization server's metadata), refreshed in the background.
//!
//! - The set is refreshed as its `Cache-Control: max-age` says, clamped between
//!   [`JwksOptions::min_refresh`] and [`JwksOptions::max_refresh`].
//! - A token with an unknown `kid` triggers a refetch (the issuer may have rotated keys), at most
//!   once per [`JwksOptions::min_refetch_interval`], so a flood of forged `kid`s cannot turn the
//!   service into a load generator against the issuer.
//! - A failed fetch keeps the last good set; an issuer unreachable at start-up does not stop the
//!   application: its tokens get 503 until a background retry succeeds.
//! - Symmetric (`oct`) keys are refused from a URL, and only the configured URL is ever fetched:
//!   never a `jku` or `x5u` from a token (RFC 8725 §3.10).

use portcullis_core::observe::JwksFailure;
use std::{
    sync::{
        Arc, Mutex, RwLock, Weak,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use crate::{
    KeyError,
    verifying_key::{VerifyingKey, parse_jwks},
};

/// How a JWKS URL key set is fetched and refreshed.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use portcullis_jwt::JwksOptions;
///
/// let options = JwksOptions::new()
///     .default_refresh(Duration::from_secs(600))
///     .min_refetch_interval(Duration::from_secs(30))
///     .timeout(Duration::from_secs(3));
/// ```
#[derive(Debug, Clone)]
pub struct JwksOptions {
    default_refresh: Duration,
    min_refresh: Duration,
    max_refresh: Duration,
    min_refetch_interval: Duration,
    retry_interval: Duration,
    timeout: Duration,
    max_body_bytes: usize,
}

impl Default for JwksOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl JwksOptions {
    /// Refresh every 5 minutes unless `Cache-Control` says otherwise (kept between 1 minute and
    /// 1 day), refetch on an unknown `kid` at most every 10 s, retry failures after 2 s (doubling
    /// up to the refresh period), 5 s timeout, 256 KiB body limit.
    pub fn new() -> Self {
        Self {
            default_refresh: Duration::from_secs(300),
            min_refresh: Duration::from_secs(60),
            max_refresh: Duration::from_secs(86_400),
            min_refetch_interval: Duration::from_secs(10),
            retry_interval: Duration::from_secs(2),
            timeout: Duration::from_secs(5),
            max_body_bytes: 256 * 1024,
        }
    }

    /// The refresh period when the response has no usable `Cache-Control: max-age`.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().default_refresh(std::time::Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn default_refresh(mut self, period: Duration) -> Self {
        self.default_refresh = period;
        self
    }

    /// The shortest refresh period a `max-age` may ask for.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().min_refresh(std::time::Duration::from_secs(30));
    /// ```
    #[must_use]
    pub fn min_refresh(mut self, period: Duration) -> Self {
        self.min_refresh = period;
        self
    }

    /// The longest refresh period a `max-age` may ask for.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().max_refresh(std::time::Duration::from_secs(3600));
    /// ```
    #[must_use]
    pub fn max_refresh(mut self, period: Duration) -> Self {
        self.max_refresh = period;
        self
    }

    /// The least time between two fetches triggered by tokens with an unknown `kid`.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().min_refetch_interval(std::time::Duration::from_secs(60));
    /// ```
    #[must_use]
    pub fn min_refetch_interval(mut self, interval: Duration) -> Self {
        self.min_refetch_interval = interval;
        self
    }

    /// The first retry delay after a failed fetch (doubling after each further failure).
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().retry_interval(std::time::Duration::from_secs(1));
    /// ```
    #[must_use]
    pub fn retry_interval(mut self, interval: Duration) -> Self {
        self.retry_interval = interval.max(Duration::from_millis(10));
        self
    }

    /// The time limit of one fetch, connection included.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().timeout(std::time::Duration::from_secs(2));
    /// ```
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The largest JWKS document accepted.
    ///
    /// # Examples
    ///
    /// ```
    /// let options = portcullis_jwt::JwksOptions::new().max_body_bytes(64 * 1024);
    /// ```
    #[must_use]
    pub fn max_body_bytes(mut self, max: usize) -> Self {
        self.max_body_bytes = max;
        self
    }

    pub(crate) fn body_limit(&self) -> usize {
        self.max_body_bytes
    }

    fn clamp_refresh(&self, period: Duration) -> Duration {
        period.clamp(self.min_refresh, self.max_refresh.max(self.min_refresh))
    }
}

type Keys = Arc<[Arc<VerifyingKey>]>;

pub(crate) struct RemoteJwks {
    /// The JWKS URL, or the OpenID Connect issuer whose discovery document names it.
    url: crate::oidc::KeysLocation,
    client: reqwest::Client,
    options: JwksOptions,
    /// `None` until the first successful fetch.
    keys: RwLock<Option<Keys>>,
    /// Counts stored key sets, so caches of verified tokens can tell the keys changed.
    epoch: AtomicU64,
    /// One fetch at a time; requests that wait for it reuse its result.
    fetching: tokio::sync::Mutex<()>,
    last_attempt: Mutex<Option<Instant>>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum FetchError {
    #[error("request failed")]
    Http(#[source] reqwest::Error),
    #[error("unexpected status {0}")]
    Status(reqwest::StatusCode),
    #[error("the JWKS document is larger than the limit")]
    TooLarge,
    #[error("the JWKS document is invalid")]
    Invalid(#[source] KeyError),
    #[error("OpenID Connect discovery failed: {0}")]
    Discovery(#[from] crate::oidc::DiscoveryError),
}

impl RemoteJwks {
    /// Changes every time a fetched key set is stored.
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self) -> Option<Keys> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Whether an unknown-`kid` refetch is allowed now (rate limit).
    pub(crate) fn may_refetch(&self) -> bool {
        let last = *self
            .last_attempt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        last.is_none_or(|at| at.elapsed() >= self.options.min_refetch_interval)
    }

    /// Refetches for an unknown `kid` (or a set never loaded), unless the rate limit forbids it
    /// or another fetch just ran. Returns whether this call fetched.
    pub(crate) async fn refetch_unknown_kid(&self) -> bool {
        let _guard = self.fetching.lock().await;
        if !self.may_refetch() {
            return false;
        }
        let _ = self.fetch().await;
        true
    }

    /// Fetches the set; on success replaces the keys and returns when to refresh next.
    async fn fetch(&self) -> Result<Duration, FetchError> {
        *self
            .last_attempt
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Instant::now());
        let result = self.fetch_inner().await;
        match &result {
            Ok(next) => {
                tracing::debug!(url = %self.url, next_refresh_secs = next.as_secs(), "JWKS fetched")
            }
            Err(error) => {
                tracing::warn!(url = %self.url, %error, "JWKS fetch failed; keeping the last good key set");
                portcullis_core::observe::jwks_fetch_failure(match error {
                    FetchError::Http(_) => JwksFailure::Http,
                    FetchError::Status(_) => JwksFailure::Status,
                    FetchError::TooLarge => JwksFailure::TooLarge,
                    // Discovery failed (unreachable, or a document naming another issuer).
                    FetchError::Invalid(_) | FetchError::Discovery(_) => JwksFailure::Invalid,
                });
            }
        }
        result
    }

    async fn fetch_inner(&self) -> Result<Duration, FetchError> {
        let url = self.url.jwks_url(&self.client, &self.options).await?;
        let mut response = self
            .client
            .get(url)
            .header(
                reqwest::header::ACCEPT,
                "application/jwk-set+json, application/json",
            )
            .send()
            .await
            .map_err(FetchError::Http)?;
        if response.status() != reqwest::StatusCode::OK {
            return Err(FetchError::Status(response.status()));
        }
        let refresh = cache_max_age(response.headers())
            .map_or(self.options.default_refresh, |max_age| {
                self.options.clamp_refresh(max_age)
            });
        let body = read_bounded(&mut response, self.options.max_body_bytes).await?;
        let keys = parse_jwks(&body, false).map_err(FetchError::Invalid)?;
        let keys: Keys = keys.into_iter().map(Arc::new).collect::<Vec<_>>().into();
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(keys);
        self.epoch.fetch_add(1, Ordering::Release);
        Ok(refresh)
    }
}

/// The body, refused past `max` bytes (announced or streamed): RFC 8725 §3.11 / OWASP on
/// bounding what an outside server can make us hold.
pub(crate) async fn read_bounded(
    response: &mut reqwest::Response,
    max: usize,
) -> Result<Vec<u8>, FetchError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(FetchError::Http)? {
        if body.len().saturating_add(chunk.len()) > max {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `max-age` of a `Cache-Control` header (RFC 9111 §5.2.2.1); `no-store`/`no-cache` count as 0.
fn cache_max_age(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let mut max_age = None;
    for value in headers.get_all(reqwest::header::CACHE_CONTROL) {
        let Ok(value) = value.to_str() else { continue };
        for directive in value.split(',') {
            let directive = directive.trim();
            if directive.eq_ignore_ascii_case("no-store")
                || directive.eq_ignore_ascii_case("no-cache")
            {
                return Some(Duration::ZERO);
            }
            if let Some((name, seconds)) = directive.split_once('=')
                && name.trim().eq_ignore_ascii_case("max-age")
                && let Ok(seconds) = seconds.trim().trim_matches('"').parse::<u64>()
            {
                max_age = Some(Duration::from_secs(seconds));
            }
        }
    }
    max_age
}

async fn refresh_loop(remote: Weak<RemoteJwks>, retry_interval: Duration) {
    let mut backoff = retry_interval;
    loop {
        let Some(strong) = remote.upgrade() else {
            return;
        };
        let wait = {
            let _guard = strong.fetching.lock().await;
            match strong.fetch().await {
                Ok(next) => {
                    backoff = retry_interval;
                    next
                }
                Err(_) => {
                    let wait = backoff;
                    backoff = (backoff * 2).min(strong.options.default_refresh.max(retry_interval));
                    wait
                }
            }
        };
        drop(strong);
        tokio::time::sleep(wait).await;
    }
}

impl RemoteJwks {
    /// Checks `url`, builds the HTTP client and starts the background refresh task; the set
    /// is [`KeySet::from_jwks_url`](crate::KeySet::from_jwks_url).
    pub(crate) fn start(url: &str, options: JwksOptions) -> Result<Arc<Self>, KeyError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| KeyError::InvalidUrl(url.to_owned()))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host().is_none() {
            return Err(KeyError::InvalidUrl(url.to_owned()));
        }
        Self::from_location(crate::oidc::KeysLocation::Jwks(parsed), options)
    }

    /// Builds the HTTP client and starts the background refresh of the keys at `url` (a JWKS
    /// URL, or an issuer whose discovery document names it).
    pub(crate) fn from_location(
        url: crate::oidc::KeysLocation,
        options: JwksOptions,
    ) -> Result<Arc<Self>, KeyError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| KeyError::NoRuntime)?;
        let client = reqwest::Client::builder()
            .timeout(options.timeout)
            .connect_timeout(options.timeout)
            .redirect(reqwest::redirect::Policy::limited(3))
            .build()
            .map_err(KeyError::HttpClient)?;
        let retry_interval = options.retry_interval;
        let remote = Arc::new(RemoteJwks {
            url,
            client,
            options,
            keys: RwLock::new(None),
            epoch: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(()),
            last_attempt: Mutex::new(None),
        });
        runtime.spawn(refresh_loop(Arc::downgrade(&remote), retry_interval));
        Ok(remote)
    }
}

#[cfg(test)]
mod tests;

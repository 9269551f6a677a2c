//! [`ClientAddress`]: the address a login came from, for the per-client limit. Taken from the
//! connection; `X-Forwarded-For` only when the application says how many proxies it trusts.

use std::net::IpAddr;

use http::HeaderMap;

/// The address of the client that sent a request, if the server recorded it.
///
/// With axum, serve the router with
/// `into_make_service_with_connect_info::<SocketAddr>()` so the connection's address is in the
/// request; on a bare hyper server, insert a `ClientAddress` extension into each request of a
/// connection. Without either there is no address and only the per-account limit applies.
///
/// # Examples
///
/// ```
/// # #[cfg(feature = "axum")] {
/// use std::net::SocketAddr;
/// use axum::extract::ConnectInfo;
/// use portcullis_core::ClientAddress;
///
/// let mut request = http::Request::new(());
/// let peer: SocketAddr = "192.0.2.7:50000".parse().unwrap();
/// request.extensions_mut().insert(ConnectInfo(peer));
/// assert_eq!(ClientAddress::from_extensions(request.extensions()).0, Some(peer.ip()));
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientAddress(pub Option<IpAddr>);

impl ClientAddress {
    /// The address the server recorded in the request: a `ClientAddress` extension (what a
    /// bare hyper server, or a middleware the application trusts, inserts), else, with the
    /// `axum` feature, the connection's address from axum's `ConnectInfo<SocketAddr>`.
    pub fn from_extensions(extensions: &http::Extensions) -> Self {
        if let Some(address) = extensions.get::<Self>() {
            return *address;
        }
        #[cfg(feature = "axum")]
        if let Some(info) = extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>() {
            return Self(Some(info.0.ip()));
        }
        Self(None)
    }

    /// The client as seen by the outermost of `trusted_proxies` reverse proxies: the address
    /// that many entries from the right of `X-Forwarded-For`, where each proxy appends the
    /// address it received the request from. Falls back to `connection` when there are fewer
    /// entries than proxies or an entry is not an IP address.
    ///
    /// # Security
    ///
    /// Every entry left of the ones your own proxies wrote is whatever the client chose to
    /// send: trusting one proxy too many lets any client pick the address it is counted
    /// under, and so escape the per-client limit. Use this only with exactly the number of
    /// proxies that always sit in front of the application. `trusted_proxies = 0` ignores the
    /// header.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::net::IpAddr;
    /// use http::HeaderMap;
    /// use portcullis_core::ClientAddress;
    ///
    /// let proxy: IpAddr = "10.0.0.2".parse().unwrap();
    /// let mut headers = HeaderMap::new();
    /// headers.insert("x-forwarded-for", "203.0.113.9, 198.51.100.4".parse().unwrap());
    /// // One proxy (10.0.0.2) in front: the client is the address it appended.
    /// let client = ClientAddress::dangerous_from_forwarded_for(&headers, 1, Some(proxy));
    /// assert_eq!(client.0, Some("198.51.100.4".parse().unwrap()));
    /// ```
    pub fn dangerous_from_forwarded_for(
        headers: &HeaderMap,
        trusted_proxies: usize,
        connection: Option<IpAddr>,
    ) -> Self {
        if trusted_proxies == 0 {
            return Self(connection);
        }
        // Several headers are one comma-separated list, in order (RFC 9110 §5.3).
        let entries: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        let chosen = entries
            .len()
            .checked_sub(trusted_proxies)
            .and_then(|index| entries.get(index))
            .and_then(|entry| entry.parse::<IpAddr>().ok());
        Self(chosen.or(connection))
    }
}

#[cfg(feature = "axum")]
impl<S: Send + Sync> axum_core::extract::FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut http::request::Parts,
        _: &S,
    ) -> Result<Self, Self::Rejection> {
        Ok(Self::from_extensions(&parts.extensions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inserted_client_address_is_used_and_nothing_else_is_guessed() {
        let mut extensions = http::Extensions::new();
        assert_eq!(
            ClientAddress::from_extensions(&extensions),
            ClientAddress(None)
        );
        let address = ClientAddress(Some("192.0.2.9".parse().unwrap()));
        extensions.insert(address);
        assert_eq!(ClientAddress::from_extensions(&extensions), address);
    }

    #[test]
    fn forwarded_for_is_read_only_as_far_as_the_trusted_proxies() {
        let peer: IpAddr = "10.0.0.1".parse().unwrap();
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        let cases: &[(&[&str], usize, Option<IpAddr>)] = &[
            (&["1.1.1.1"], 0, Some(peer)),
            (&["1.1.1.1"], 1, ip("1.1.1.1")),
            (&["6.6.6.6, 1.1.1.1"], 1, ip("1.1.1.1")),
            (&["6.6.6.6", "1.1.1.1, 2.2.2.2"], 2, ip("1.1.1.1")),
            (&["1.1.1.1"], 2, Some(peer)),
            (&["not-an-ip"], 1, Some(peer)),
            (&[], 1, Some(peer)),
            (&["2001:db8::1"], 1, ip("2001:db8::1")),
        ];
        for (values, proxies, expected) in cases {
            let mut headers = HeaderMap::new();
            for value in *values {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            let got = ClientAddress::dangerous_from_forwarded_for(&headers, *proxies, Some(peer));
            assert_eq!(got.0, *expected, "{values:?} with {proxies} proxies");
        }
    }
}

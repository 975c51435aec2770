//! Where requests may go: the rules on endpoint URLs (https, or http on
//! loopback only) and the environment variable that moves the token
//! endpoint. A leaf: the manifest checks, the key flow and the S3 client
//! all ask it, and it asks none of them.

/// Overrides the token endpoint a service-account key names.
pub const TOKEN_URL_ENV: &str = "STACKIT_TOKEN_BASEURL";

/// `localhost`, `127.0.0.0/8` and `::1`.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Why an endpoint is refused; the text quotes the endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("`{endpoint}` is not a URL ({reason})")]
    NotAUrl {
        endpoint: String,
        reason: url::ParseError,
    },
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error("`{0}` uses plain http; only loopback endpoints may, use https")]
    PlainHttp(String),
    #[error("`{endpoint}` has scheme `{scheme}`; use https")]
    Scheme { endpoint: String, scheme: String },
}

/// An endpoint must be an absolute http(s) URL; plain http only on loopback,
/// since tokens and S3 signatures travel over it. The parsed URL when it is.
pub fn check_endpoint(endpoint: &str) -> Result<url::Url, EndpointError> {
    let url = url::Url::parse(endpoint).map_err(|reason| EndpointError::NotAUrl {
        endpoint: endpoint.to_owned(),
        reason,
    })?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => is_loopback_host(d),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(EndpointError::NoHost(endpoint.to_owned())),
    };
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err(EndpointError::PlainHttp(endpoint.to_owned())),
        other => Err(EndpointError::Scheme {
            endpoint: endpoint.to_owned(),
            scheme: other.to_owned(),
        }),
    }
}

/// A URL's host, with its port when not the scheme's default: the first
/// part of an `s3://host/bucket/key` URI.
pub fn authority(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// [`authority`] of a URL given as text; None when it does not parse.
pub fn authority_of(url: &str) -> Option<String> {
    authority(&url::Url::parse(url).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_need_https_except_on_loopback() {
        assert!(check_endpoint("https://object.storage.eu01.onstackit.cloud").is_ok());
        assert!(check_endpoint("http://127.0.0.1:9000").is_ok());
        assert!(check_endpoint("http://localhost:9000").is_ok());
        assert!(check_endpoint("http://[::1]:9000").is_ok());
        assert!(matches!(
            check_endpoint("http://example.com"),
            Err(EndpointError::PlainHttp(_))
        ));
        assert!(matches!(
            check_endpoint("ftp://example.com"),
            Err(EndpointError::Scheme { .. })
        ));
        assert!(check_endpoint("not a url").is_err());
    }

    /// url's IDNA back end is chosen in Cargo.toml (`idna_adapter`); its
    /// stub back end would refuse every host that is not ASCII.
    #[test]
    fn internationalised_hosts_are_accepted_in_their_ascii_form() {
        assert!(check_endpoint("https://bücher.example").is_ok());
        let url = url::Url::parse("https://BÜCHER.example/").unwrap();
        assert_eq!(url.host_str(), Some("xn--bcher-kva.example"));
    }
}

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

/// An endpoint must be an absolute http(s) URL; plain http only on loopback,
/// since tokens and S3 signatures travel over it.
pub fn check_endpoint(endpoint: &str) -> Result<(), String> {
    let url = url::Url::parse(endpoint).map_err(|e| format!("`{endpoint}` is not a URL ({e})"))?;
    let loopback = match url.host() {
        Some(url::Host::Domain(d)) => is_loopback_host(d),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => return Err(format!("`{endpoint}` has no host")),
    };
    match url.scheme() {
        "https" => Ok(()),
        "http" if loopback => Ok(()),
        "http" => Err(format!(
            "`{endpoint}` uses plain http; only loopback endpoints may, use https"
        )),
        other => Err(format!("`{endpoint}` has scheme `{other}`; use https")),
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
        assert!(
            check_endpoint("http://example.com")
                .unwrap_err()
                .contains("plain http")
        );
        assert!(
            check_endpoint("ftp://example.com")
                .unwrap_err()
                .contains("scheme")
        );
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

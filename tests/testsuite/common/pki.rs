//! Certificates for the tests of TLS: a private CA made per test, and a
//! certificate it signed for the emulator's SQL Server door.

use sqlflex_import::emulator::tds::TlsIdentity;

/// A private CA no trust store knows, and a certificate it signed for
/// `localhost` (its common name too) and 127.0.0.1.
pub struct PrivateCa {
    /// The door's identity.
    pub identity: TlsIdentity,
    /// The CA's certificate, PEM.
    pub ca: String,
    /// The door's certificate and key, PEM, for the `emulator` command.
    pub leaf: String,
    pub key: String,
}

pub fn private_ca() -> PrivateCa {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "sqlflex-import test CA");
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate().unwrap();
    let mut leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    // python-tds matches the host name against the common name first (its
    // look at the alternative names needs an API pyOpenSSL has dropped).
    leaf.distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf.signed_by(&key, &issuer).unwrap();
    PrivateCa {
        identity: TlsIdentity {
            cert_chain: vec![leaf.der().clone()],
            key: rustls::pki_types::PrivateKeyDer::try_from(key.serialize_der()).unwrap(),
        },
        ca: pem_block("CERTIFICATE", ca_cert.der()),
        leaf: pem_block("CERTIFICATE", leaf.der()),
        key: pem_block("PRIVATE KEY", &key.serialize_der()),
    }
}

pub fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

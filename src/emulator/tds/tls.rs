//! TLS on the SQL Server door, the way TDS 7.x carries it (MS-TDS 3.3.4.1
//! and 2.2.6.5): when both sides want encryption, the TLS handshake's
//! records travel as the payload of PRELOGIN packets; once the handshake is
//! done, TLS records flow bare on the connection and the TDS packets travel
//! inside them, to the end of the connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// The door's certificate chain and key (DER). The emulator makes no
/// certificate itself: a test brings one, signed by a CA it controls.
pub struct TlsIdentity {
    pub cert_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    pub key: rustls::pki_types::PrivateKeyDer<'static>,
}

impl TlsIdentity {
    /// A certificate chain (leaf first) and its private key, from PEM text.
    /// Errors name what is missing and never quote the key.
    pub fn from_pem(chain: &str, key: &str) -> Result<Self, String> {
        use rustls::pki_types::{
            CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer,
            PrivateSec1KeyDer,
        };
        let cert_chain: Vec<CertificateDer<'static>> = pem::parse_many(chain)
            .map_err(|e| format!("the certificate file is not PEM: {e}"))?
            .into_iter()
            .filter(|block| block.tag() == "CERTIFICATE")
            .map(|block| CertificateDer::from(block.into_contents()))
            .collect();
        if cert_chain.is_empty() {
            return Err("the certificate file holds no CERTIFICATE block".into());
        }
        let blocks = pem::parse_many(key).map_err(|e| format!("the key file is not PEM: {e}"))?;
        let key = blocks
            .into_iter()
            .find_map(|block| match block.tag() {
                "PRIVATE KEY" => Some(PrivateKeyDer::from(PrivatePkcs8KeyDer::from(
                    block.into_contents(),
                ))),
                "RSA PRIVATE KEY" => Some(PrivatePkcs1KeyDer::from(block.into_contents()).into()),
                "EC PRIVATE KEY" => Some(PrivateSec1KeyDer::from(block.into_contents()).into()),
                _ => None,
            })
            .ok_or("the key file holds no PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block")?;
        let identity = TlsIdentity { cert_chain, key };
        // A key that does not fit the certificate is refused now, not at the
        // first client's handshake.
        server_config(&identity)
            .map_err(|e| format!("the certificate and key do not go together: {e}"))?;
        Ok(identity)
    }
}

impl Clone for TlsIdentity {
    fn clone(&self) -> Self {
        TlsIdentity {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl std::fmt::Debug for TlsIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TlsIdentity({} certificates, key)",
            self.cert_chain.len()
        )
    }
}

/// The server side of the door's TLS.
pub fn server_config(identity: &TlsIdentity) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())?;
    // A TLS 1.3 ticket is sent after the handshake, while the client has
    // already stopped unwrapping PRELOGIN packets: it would read the
    // wrapped ticket as a bare record and fail.
    config.send_tls13_tickets = 0;
    // TDS 8.0's protocol name; a TDS 7.x client offers none and still gets
    // TLS inside PRELOGIN.
    config.alpn_protocols = vec![b"tds/8.0".to_vec()];
    Ok(Arc::new(config))
}

use super::wire::{HEADER, PACKET_PRELOGIN};

/// A handshake flight larger than one packet goes out in several.
const PACKET_SIZE: usize = 4096;

/// The connection under the TLS layer: PRELOGIN framing while the handshake
/// runs, then the bare connection.
///
/// The read side learns the end from the client itself: tokio-rustls goes
/// on reading after the client's last handshake message, and by then the
/// client may already have sent its LOGIN7 as a bare TLS record. A record
/// where a packet header should be (TLS content types 0x14-0x17, which no
/// TDS packet type uses) is handed on as it is, and so is all that follows.
pub struct PreloginFraming<S> {
    inner: S,
    reads_framed: bool,
    writes_framed: bool,
    header: [u8; HEADER],
    header_read: usize,
    /// Bytes of a bare record read as if they were a header, handed on first.
    replay: std::ops::Range<usize>,
    /// Payload bytes of the current PRELOGIN packet not yet handed to TLS.
    payload_left: usize,
    /// Handshake bytes TLS wrote, sent as PRELOGIN packets on flush.
    pending: Vec<u8>,
    /// Framed bytes being written.
    out: Vec<u8>,
}

impl<S> PreloginFraming<S> {
    pub fn new(inner: S) -> Self {
        PreloginFraming {
            inner,
            reads_framed: true,
            writes_framed: true,
            header: [0; HEADER],
            header_read: 0,
            replay: 0..0,
            payload_left: 0,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// The connection itself, for a session that goes on in clear after a
    /// LOGIN7 in TLS. Refused while bytes read from it are still held.
    pub fn into_inner(self) -> io::Result<S> {
        if !self.replay.is_empty() || self.payload_left > 0 || self.header_read > 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "the client sent more than its LOGIN7 before the login's answer",
            ));
        }
        Ok(self.inner)
    }

    /// The server's handshake is over: from here on, TLS records go bare.
    pub fn handshake_done(&mut self) {
        self.writes_framed = false;
        if self.payload_left == 0 && self.header_read == 0 {
            self.reads_framed = false;
        }
    }
}

/// TLS record content types: change cipher spec, alert, handshake, data.
pub fn is_tls_record(first: u8) -> bool {
    (0x14..=0x17).contains(&first)
}

impl<S: AsyncRead + Unpin> AsyncRead for PreloginFraming<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.replay.is_empty() {
            let n = this.replay.len().min(buf.remaining());
            buf.put_slice(&this.header[this.replay.start..this.replay.start + n]);
            this.replay.start += n;
            return Poll::Ready(Ok(()));
        }
        if !this.reads_framed {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        while this.payload_left == 0 {
            while this.header_read < HEADER {
                let mut rest = ReadBuf::new(&mut this.header[this.header_read..]);
                ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rest))?;
                if rest.filled().is_empty() {
                    return Poll::Ready(Ok(())); // The client hung up.
                }
                this.header_read += rest.filled().len();
            }
            this.header_read = 0;
            if is_tls_record(this.header[0]) {
                // The client's handshake is over and it went on bare.
                this.reads_framed = false;
                this.replay = 0..HEADER;
                return Pin::new(this).poll_read(cx, buf);
            }
            if this.header[0] != PACKET_PRELOGIN {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    "expected a PRELOGIN packet during the TLS handshake",
                )));
            }
            let length = usize::from(u16::from_be_bytes([this.header[2], this.header[3]]));
            this.payload_left = length.checked_sub(HEADER).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "a packet shorter than its header",
                )
            })?;
        }
        let room = buf.remaining().min(this.payload_left);
        let mut part = ReadBuf::new(buf.initialize_unfilled_to(room));
        ready!(Pin::new(&mut this.inner).poll_read(cx, &mut part))?;
        let got = part.filled().len();
        if got == 0 && room > 0 {
            return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into()));
        }
        buf.advance(got);
        this.payload_left -= got;
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for PreloginFraming<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if !this.writes_framed {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let packets = super::wire::packets(PACKET_PRELOGIN, &this.pending, PACKET_SIZE);
            this.out.extend_from_slice(&packets);
            this.pending.clear();
        }
        while !this.out.is_empty() {
            let n = ready!(Pin::new(&mut this.inner).poll_write(cx, &this.out))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            this.out.drain(..n);
        }
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn prelogin(payload: &[u8]) -> Vec<u8> {
        super::super::wire::packets(PACKET_PRELOGIN, payload, PACKET_SIZE)
    }

    /// The client's last handshake packet and, right behind it, its first
    /// bare record (LOGIN7 in TLS): the handshake's bytes come unwrapped,
    /// the record whole, though the reader went on before it was told.
    #[tokio::test]
    async fn a_bare_record_behind_the_handshake_is_handed_on_whole() {
        let record = [0x17, 0x03, 0x03, 0x00, 0x05, 1, 2, 3, 4, 5];
        let mut wire = prelogin(b"finished");
        wire.extend_from_slice(&record);
        let mut framing = PreloginFraming::new(&wire[..]);
        let mut got = Vec::new();
        framing.read_to_end(&mut got).await.unwrap();
        let mut want = b"finished".to_vec();
        want.extend_from_slice(&record);
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn anything_else_in_place_of_a_packet_is_refused() {
        let mut wire = prelogin(b"hello");
        wire.extend_from_slice(&[0x10, 0x01, 0x00, 0x09, 0, 0, 1, 0, 0]); // LOGIN7 in clear
        let mut got = Vec::new();
        let e = PreloginFraming::new(&wire[..]).read_to_end(&mut got).await;
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidData);
        assert_eq!(got, b"hello");
    }

    /// Handshake writes leave as PRELOGIN packets (split at 4 KiB, the last
    /// one marked end of message); after the handshake, bare.
    #[tokio::test]
    async fn writes_are_framed_until_the_handshake_is_done() {
        let mut framing = PreloginFraming::new(Vec::new());
        framing.write_all(&[7; 5000]).await.unwrap();
        framing.flush().await.unwrap();
        framing.handshake_done();
        framing.write_all(b"bare").await.unwrap();
        framing.flush().await.unwrap();
        let out = framing.inner;
        assert_eq!(&out[..4], &[PACKET_PRELOGIN, 0, 0x10, 0x00]);
        let second = PACKET_SIZE;
        assert_eq!(out[second], PACKET_PRELOGIN);
        assert_eq!(out[second + 1], 1, "end of message");
        let second_len = usize::from(u16::from_be_bytes([out[second + 2], out[second + 3]]));
        assert_eq!(second_len, HEADER + 5000 - (PACKET_SIZE - HEADER));
        assert_eq!(&out[second + second_len..], b"bare");
    }
}

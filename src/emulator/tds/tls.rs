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
    Ok(Arc::new(config))
}

const HEADER: usize = 8;
const PACKET_PRELOGIN: u8 = 0x12;
/// A handshake flight larger than one packet goes out in several.
const MAX_PAYLOAD: usize = 4096 - HEADER;

/// The connection under the TLS layer: PRELOGIN framing while the handshake
/// runs, then the bare connection.
pub struct PreloginFraming<S> {
    inner: S,
    handshaking: bool,
    header: [u8; HEADER],
    header_read: usize,
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
            handshaking: true,
            header: [0; HEADER],
            header_read: 0,
            payload_left: 0,
            pending: Vec::new(),
            out: Vec::new(),
        }
    }

    /// From here on, TLS records go bare.
    pub fn handshake_done(&mut self) {
        self.handshaking = false;
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for PreloginFraming<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.handshaking {
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
        if !this.handshaking {
            return Pin::new(&mut this.inner).poll_write(cx, buf);
        }
        this.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let chunks: Vec<&[u8]> = this.pending.chunks(MAX_PAYLOAD).collect();
            let last = chunks.len() - 1;
            for (i, chunk) in chunks.into_iter().enumerate() {
                let length = (chunk.len() + HEADER) as u16;
                let status = u8::from(i == last); // End of message.
                this.out.extend_from_slice(&[PACKET_PRELOGIN, status]);
                this.out.extend_from_slice(&length.to_be_bytes());
                this.out.extend_from_slice(&[0, 0, (i + 1) as u8, 0]);
                this.out.extend_from_slice(chunk);
            }
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

//! TDS 7.4 on the wire, server side: packets in and out, the client messages
//! the emulator reads (PRELOGIN, LOGIN7, SQL batch, RPC) and the tokens it
//! answers with (LOGINACK, ENVCHANGE, COLMETADATA, ROW, DONE*, ERROR, INFO,
//! RETURNSTATUS). MS-TDS is the reference; everything is bounds-checked, a
//! malformed message is an error value, never a panic.

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub const PACKET_SQL_BATCH: u8 = 0x01;
pub const PACKET_RPC: u8 = 0x03;
pub const PACKET_REPLY: u8 = 0x04;
pub const PACKET_ATTENTION: u8 = 0x06;
pub const PACKET_LOGIN7: u8 = 0x10;
pub const PACKET_PRELOGIN: u8 = 0x12;

pub const HEADER: usize = 8;
/// Largest message accepted from a client; the tool's are a few KiB.
const MAX_MESSAGE: usize = 4 * 1024 * 1024;

/// How long a session may stay silent, between messages or in one.
const IDLE: std::time::Duration = crate::emulator::serve::IDLE;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// Reads one message (all packets up to end-of-message): (type, payload).
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(u8, Vec<u8>)>, WireError> {
    let mut payload = Vec::new();
    let mut kind = None;
    loop {
        let mut header = [0u8; HEADER];
        // A session idle this long is closed: idle connections are not
        // kept for ever.
        match tokio::time::timeout(IDLE, r.read_exact(&mut header)).await {
            Err(_) => {
                return Err(WireError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "idle for too long",
                )));
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof && kind.is_none() => {
                return Ok(None);
            }
            Ok(Err(e)) => return Err(e.into()),
        }
        let length = usize::from(u16::from_be_bytes([header[2], header[3]]));
        if length < HEADER {
            return Err(WireError::Malformed("packet header (length below 8)"));
        }
        if *kind.get_or_insert(header[0]) != header[0] {
            return Err(WireError::Malformed(
                "message (packet types change mid-message)",
            ));
        }
        if payload.len() + length > MAX_MESSAGE {
            return Err(WireError::Malformed("message (larger than 4 MiB)"));
        }
        // Grown as the bytes arrive, not reserved at the declared length:
        // a header alone holds no memory.
        let want = (length - HEADER) as u64;
        let got = tokio::time::timeout(IDLE, (&mut *r).take(want).read_to_end(&mut payload))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "idle for too long")
            })??;
        if (got as u64) < want {
            return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
        }
        if header[1] & 0x01 != 0 {
            return Ok(Some((header[0], payload)));
        }
    }
}

/// Writes a reply message split into packets of at most `packet_size`.
pub async fn write_message<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    payload: &[u8],
    packet_size: usize,
) -> std::io::Result<()> {
    w.write_all(&packets(kind, payload, packet_size)).await?;
    w.flush().await
}

/// `payload` as TDS packets of `kind`, at most `packet_size` bytes each, the
/// last one marked end of message.
pub fn packets(kind: u8, payload: &[u8], packet_size: usize) -> Vec<u8> {
    let chunk = packet_size.clamp(512, 32767) - HEADER;
    let mut out = Vec::with_capacity(payload.len() + HEADER * (payload.len() / chunk + 1));
    let pieces: Vec<&[u8]> = if payload.is_empty() {
        vec![&[][..]]
    } else {
        payload.chunks(chunk).collect()
    };
    for (i, piece) in pieces.iter().enumerate() {
        let last = i + 1 == pieces.len();
        out.push(kind);
        out.push(u8::from(last));
        out.extend_from_slice(&((piece.len() + HEADER) as u16).to_be_bytes());
        out.extend_from_slice(&[0, 0]);
        // Packet ids count from 1 and wrap at 255 (MS-TDS 2.2.3.1.5).
        out.push(((i + 1) % 256) as u8);
        out.push(0);
        out.extend_from_slice(piece);
    }
    out
}

/// A little-endian reader over a message.
pub struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data, pos: 0 }
    }
    pub fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    pub fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], WireError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.data.len())
            .ok_or(WireError::Malformed(what))?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }
    pub fn u8(&mut self, what: &'static str) -> Result<u8, WireError> {
        Ok(self.take(1, what)?[0])
    }
    pub fn u16(&mut self, what: &'static str) -> Result<u16, WireError> {
        let b = self.take(2, what)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self, what: &'static str) -> Result<u32, WireError> {
        let b = self.take(4, what)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn u64(&mut self, what: &'static str) -> Result<u64, WireError> {
        Ok(u64::from(self.u32(what)?) | (u64::from(self.u32(what)?) << 32))
    }
    /// UTF-16LE text of `chars` characters.
    pub fn utf16(&mut self, chars: usize, what: &'static str) -> Result<String, WireError> {
        Ok(utf16(self.take(
            chars.checked_mul(2).ok_or(WireError::Malformed(what))?,
            what,
        )?))
    }
    /// B_VARCHAR: a length in characters (one byte), then UTF-16LE.
    pub fn b_varchar(&mut self, what: &'static str) -> Result<String, WireError> {
        let n = usize::from(self.u8(what)?);
        self.utf16(n, what)
    }
    /// Skips ALL_HEADERS (TDS 7.2+): a total length that includes itself.
    pub fn skip_all_headers(&mut self) -> Result<(), WireError> {
        let total = self.u32("ALL_HEADERS")? as usize;
        self.take(
            total
                .checked_sub(4)
                .ok_or(WireError::Malformed("ALL_HEADERS"))?,
            "ALL_HEADERS",
        )?;
        Ok(())
    }
}

pub fn utf16(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|w| u16::from_le_bytes([w[0], w[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// PRELOGIN's ENCRYPTION values (MS-TDS 2.2.6.5).
pub const ENCRYPT_OFF: u8 = 0x00;
pub const ENCRYPT_ON: u8 = 0x01;
pub const ENCRYPT_NOT_SUP: u8 = 0x02;
pub const ENCRYPT_REQ: u8 = 0x03;

/// What the client asked for in PRELOGIN that matters here.
pub struct PreLogin {
    /// The client's ENCRYPTION value, without the client-certificate bit
    /// (0x80); [`ENCRYPT_NOT_SUP`] when the option is absent (the client
    /// offered no TLS).
    pub encryption: u8,
}

pub fn parse_prelogin(payload: &[u8]) -> Result<PreLogin, WireError> {
    let mut r = Reader::new(payload);
    let mut encryption = ENCRYPT_NOT_SUP;
    loop {
        let token = r.u8("PRELOGIN option")?;
        if token == 0xFF {
            break;
        }
        let b = r.take(4, "PRELOGIN option")?;
        let offset = usize::from(u16::from_be_bytes([b[0], b[1]]));
        let length = usize::from(u16::from_be_bytes([b[2], b[3]]));
        if token == 0x01 && length >= 1 {
            let level = *payload
                .get(offset)
                .ok_or(WireError::Malformed("PRELOGIN encryption"))?;
            encryption = level & 0x7F;
        }
    }
    Ok(PreLogin { encryption })
}

/// How much of a session travels in TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// No session: one side insists on TLS the other cannot give, and the
    /// client hangs up on the answer (or the server does).
    Refused,
    /// Nothing: one side has no TLS.
    None,
    /// Only the client's LOGIN7; the rest, the login's answer included,
    /// in clear.
    LoginOnly,
    /// Everything after PRELOGIN.
    Whole,
}

/// The server's ENCRYPTION answer and what follows from it, by the tables
/// of MS-TDS 2.2.6.5, for the server's own setting: ENCRYPT_NOT_SUP (no
/// certificate), ENCRYPT_OFF (a certificate, encryption not forced) or
/// ENCRYPT_ON (encryption forced).
pub fn negotiate(client: u8, server: u8) -> (u8, Tls) {
    match (server, client) {
        (ENCRYPT_NOT_SUP, ENCRYPT_ON | ENCRYPT_REQ) => (ENCRYPT_NOT_SUP, Tls::Refused),
        (ENCRYPT_NOT_SUP, _) => (ENCRYPT_NOT_SUP, Tls::None),
        (_, ENCRYPT_ON | ENCRYPT_REQ) => (ENCRYPT_ON, Tls::Whole),
        (ENCRYPT_ON, ENCRYPT_OFF) => (ENCRYPT_REQ, Tls::Whole),
        // The client cannot do what a forcing server requires.
        (ENCRYPT_ON, _) => (ENCRYPT_REQ, Tls::Refused),
        (_, ENCRYPT_OFF) => (ENCRYPT_OFF, Tls::LoginOnly),
        // To a client that offered no TLS the answer is NOT_SUP: tiberius
        // reads ENCRYPT_OFF as "begin TLS".
        _ => (ENCRYPT_NOT_SUP, Tls::None),
    }
}

/// The PRELOGIN answer: server version, and the ENCRYPTION value
/// [`negotiate`] chose.
pub fn prelogin_response(version: (u8, u8, u16), encryption: u8) -> Vec<u8> {
    let options: [(u8, Vec<u8>); 4] = [
        (0x00, {
            let mut v = vec![version.0, version.1];
            v.extend_from_slice(&version.2.to_be_bytes());
            v.extend_from_slice(&[0, 0]);
            v
        }),
        (0x01, vec![encryption]),
        (0x02, vec![0x00]), // INSTOPT: no instance name check
        (0x04, vec![0x00]), // MARS off
    ];
    let mut out = Vec::new();
    let mut data = Vec::new();
    let mut offset = options.len() * 5 + 1;
    for (token, value) in &options {
        out.push(*token);
        out.extend_from_slice(&(offset as u16).to_be_bytes());
        out.extend_from_slice(&(value.len() as u16).to_be_bytes());
        offset += value.len();
        data.extend_from_slice(value);
    }
    out.push(0xFF);
    out.extend_from_slice(&data);
    out
}

pub struct Login {
    pub user: String,
    pub password: String,
    pub packet_size: u32,
    pub database: String,
}

/// LOGIN7: the fixed part, then (offset, length) references into the payload.
pub fn parse_login7(payload: &[u8]) -> Result<Login, WireError> {
    let mut r = Reader::new(payload);
    let _length = r.u32("LOGIN7 length")?;
    let _version = r.u32("LOGIN7 version")?;
    let packet_size = r.u32("LOGIN7 packet size")?;
    r.take(4 + 4 + 4 + 4 + 4 + 4, "LOGIN7 fixed fields")?; // program version .. time zone, LCID
    let mut field = |what: &'static str| -> Result<(usize, usize), WireError> {
        Ok((usize::from(r.u16(what)?), usize::from(r.u16(what)?)))
    };
    let _host = field("LOGIN7 host name")?;
    let user = field("LOGIN7 user name")?;
    let password = field("LOGIN7 password")?;
    let _app = field("LOGIN7 app name")?;
    let _server = field("LOGIN7 server name")?;
    let _extension = field("LOGIN7 extension")?;
    let _library = field("LOGIN7 library name")?;
    let _language = field("LOGIN7 language")?;
    let database = field("LOGIN7 database")?;
    let text =
        |(offset, chars): (usize, usize), what: &'static str| -> Result<Vec<u8>, WireError> {
            let end = offset
                .checked_add(chars * 2)
                .filter(|&e| e <= payload.len())
                .ok_or(WireError::Malformed(what))?;
            Ok(payload[offset..end].to_vec())
        };
    // The password is obfuscated: every byte XOR 0xA5, nibbles swapped.
    let password: Vec<u8> = text(password, "LOGIN7 password")?
        .iter()
        .map(|b| (b ^ 0xA5).rotate_left(4))
        .collect();
    Ok(Login {
        user: utf16(&text(user, "LOGIN7 user name")?),
        password: utf16(&password),
        packet_size,
        database: utf16(&text(database, "LOGIN7 database")?),
    })
}

/// A parameter value of an RPC call.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    Null,
    Text(String),
    Int(i64),
}

pub struct Rpc {
    /// The procedure's name, or `sp_executesql` etc. for a well-known id.
    pub procedure: String,
    /// (name without `@`, lower-cased; empty for positional), value.
    pub params: Vec<(String, Param)>,
}

/// RPC request: ALL_HEADERS, procedure name or id, option flags, parameters.
pub fn parse_rpc(payload: &[u8]) -> Result<Rpc, WireError> {
    let mut r = Reader::new(payload);
    r.skip_all_headers()?;
    let name_len = r.u16("RPC procedure name")?;
    let procedure = if name_len == 0xFFFF {
        match r.u16("RPC procedure id")? {
            10 => "sp_executesql".to_owned(),
            12 => "sp_prepexec".to_owned(),
            13 => "sp_execute".to_owned(),
            id => format!("procedure id {id}"),
        }
    } else {
        r.utf16(usize::from(name_len), "RPC procedure name")?
    };
    let _flags = r.u16("RPC option flags")?;
    let mut params = Vec::new();
    while r.remaining() > 0 {
        let name = r.b_varchar("RPC parameter name")?;
        let _status = r.u8("RPC parameter status")?;
        let value = read_typed_value(&mut r)?;
        params.push((name.trim_start_matches('@').to_lowercase(), value));
    }
    Ok(Rpc { procedure, params })
}

/// TYPE_INFO followed by the value, for the types clients send parameters as.
fn read_typed_value(r: &mut Reader<'_>) -> Result<Param, WireError> {
    match r.u8("parameter type")? {
        // NVARCHAR / NCHAR / VARCHAR / CHAR (big variants): max length, collation.
        ty @ (0xE7 | 0xEF | 0xA7 | 0xAF) => {
            let max = r.u16("parameter length")?;
            r.take(5, "parameter collation")?;
            let wide = matches!(ty, 0xE7 | 0xEF);
            let bytes = if max == 0xFFFF {
                read_plp(r)?
            } else {
                match r.u16("parameter value length")? {
                    0xFFFF => None,
                    n => Some(r.take(usize::from(n), "parameter value")?.to_vec()),
                }
            };
            Ok(match bytes {
                None => Param::Null,
                Some(b) if wide => Param::Text(utf16(&b)),
                Some(b) => Param::Text(b.iter().map(|&c| c as char).collect()),
            })
        }
        // INTN / BITN: declared size, then actual size (0 = NULL) and the bytes.
        0x26 | 0x68 => {
            let _declared = r.u8("parameter length")?;
            let n = usize::from(r.u8("parameter value length")?);
            let b = r.take(n, "parameter value")?;
            Ok(match n {
                0 => Param::Null,
                1 => Param::Int(i64::from(b[0] as i8)),
                2 => Param::Int(i64::from(i16::from_le_bytes([b[0], b[1]]))),
                4 => Param::Int(i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))),
                8 => Param::Int(i64::from_le_bytes(b.try_into().expect("8 bytes"))),
                _ => return Err(WireError::Malformed("integer parameter")),
            })
        }
        _ => Err(WireError::Malformed(
            "parameter (only string and integer parameters are emulated)",
        )),
    }
}

/// Partially length-prefixed bytes (NVARCHAR(MAX)): total length, chunks, 0.
fn read_plp(r: &mut Reader<'_>) -> Result<Option<Vec<u8>>, WireError> {
    let total = r.u64("PLP length")?;
    if total == u64::MAX {
        return Ok(None);
    }
    let mut out = Vec::new();
    loop {
        let chunk = r.u32("PLP chunk")? as usize;
        if chunk == 0 {
            return Ok(Some(out));
        }
        out.extend_from_slice(r.take(chunk, "PLP chunk")?);
    }
}

/// SQL batch: ALL_HEADERS, then the text.
pub fn parse_sql_batch(payload: &[u8]) -> Result<String, WireError> {
    let mut r = Reader::new(payload);
    // Headers are present from TDS 7.2 on; tell by the plausible total length.
    let total = u32::from_le_bytes(
        payload
            .get(..4)
            .ok_or(WireError::Malformed("SQL batch"))?
            .try_into()
            .expect("4 bytes"),
    );
    if (22..=payload.len() as u32).contains(&total) {
        r.skip_all_headers()?;
    }
    let rest = r.remaining();
    Ok(utf16(r.take(rest, "SQL batch text")?))
}

/// A column of a result set.
#[derive(Debug, Clone, Copy)]
pub enum ColumnType {
    Int,
    NVarChar(u16),
    DateTime,
    /// REAL (FLTN of 4 bytes), as `percent_complete`.
    Real,
    /// BIT (BITN), as `is_read_only`.
    Bit,
    /// TINYINT (INTN of 1 byte), as `compatibility_level`.
    TinyInt,
    /// VARBINARY(n), as `sid`.
    VarBinary(u16),
}

/// A cell value.
#[derive(Debug, Clone)]
pub enum Cell {
    /// NULL in an INT or DATETIME column.
    Null,
    Int(i32),
    Real(f32),
    Text(String),
    /// Days since 1900-01-01 and 1/300 s ticks since midnight.
    DateTime(i32, u32),
    Bit(bool),
    TinyInt(u8),
    Bytes(Vec<u8>),
    /// NULL in a NVARCHAR or VARBINARY column.
    NullVar,
}

/// SQL_Latin1_General_CP1_CI_AS.
const COLLATION: [u8; 5] = [0x09, 0x04, 0xD0, 0x00, 0x34];

/// Builds the token stream of a reply.
#[derive(Default)]
pub struct Tokens(pub Vec<u8>);

pub const DONE_FINAL: u16 = 0x00;
pub const DONE_MORE: u16 = 0x01;
pub const DONE_ERROR: u16 = 0x02;
pub const DONE_COUNT: u16 = 0x10;
pub const DONE_ATTN: u16 = 0x20;

impl Tokens {
    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn b_varchar(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().take(255).collect();
        self.0.push(units.len() as u8);
        units.iter().for_each(|u| self.u16(*u));
    }
    fn us_varchar(&mut self, s: &str) {
        let units: Vec<u16> = s.encode_utf16().take(65535).collect();
        self.u16(units.len() as u16);
        units.iter().for_each(|u| self.u16(*u));
    }
    /// A token with a 16-bit length prefix computed after `body` wrote it.
    fn with_length(&mut self, token: u8, body: impl FnOnce(&mut Tokens)) {
        self.0.push(token);
        let at = self.0.len();
        self.u16(0);
        body(self);
        let len = (self.0.len() - at - 2) as u16;
        self.0[at..at + 2].copy_from_slice(&len.to_le_bytes());
    }

    pub fn login_ack(&mut self, version: (u8, u8, u16)) {
        self.with_length(0xAD, |t| {
            t.0.push(1); // SQL interface
            t.0.extend_from_slice(&0x7400_0004u32.to_be_bytes()); // TDS 7.4
            t.b_varchar("Microsoft SQL Server");
            t.0.push(version.0);
            t.0.push(version.1);
            t.0.extend_from_slice(&version.2.to_be_bytes());
        });
    }

    pub fn env_change(&mut self, kind: u8, new: &str, old: &str) {
        self.with_length(0xE3, |t| {
            t.0.push(kind);
            t.b_varchar(new);
            t.b_varchar(old);
        });
    }

    pub fn env_collation(&mut self) {
        self.with_length(0xE3, |t| {
            t.0.push(7);
            t.0.push(COLLATION.len() as u8);
            t.0.extend_from_slice(&COLLATION);
            t.0.push(0);
        });
    }

    /// ERROR (0xAA) or INFO (0xAB).
    pub fn message(&mut self, error: bool, number: i32, class: u8, text: &str, server: &str) {
        self.with_length(if error { 0xAA } else { 0xAB }, |t| {
            t.u32(number as u32);
            t.0.push(1); // state
            t.0.push(class);
            t.us_varchar(text);
            t.b_varchar(server);
            t.b_varchar("");
            t.u32(1); // line number
        });
    }

    pub fn columns(&mut self, columns: &[(&str, ColumnType)]) {
        self.0.push(0x81);
        self.u16(columns.len() as u16);
        for (name, ty) in columns {
            self.u32(0); // user type
            self.u16(0x0001); // flags: nullable
            match ty {
                ColumnType::Int => self.0.extend_from_slice(&[0x26, 4]),
                ColumnType::NVarChar(max_chars) => {
                    self.0.push(0xE7);
                    self.u16(max_chars * 2);
                    self.0.extend_from_slice(&COLLATION);
                }
                ColumnType::DateTime => self.0.extend_from_slice(&[0x6F, 8]),
                ColumnType::Real => self.0.extend_from_slice(&[0x6D, 4]),
                ColumnType::Bit => self.0.extend_from_slice(&[0x68, 1]),
                ColumnType::TinyInt => self.0.extend_from_slice(&[0x26, 1]),
                ColumnType::VarBinary(max) => {
                    self.0.push(0xA5);
                    self.u16(*max);
                }
            }
            self.b_varchar(name);
        }
    }

    pub fn row(&mut self, cells: &[Cell]) {
        self.0.push(0xD1);
        for cell in cells {
            match cell {
                Cell::Null => self.0.push(0), // INTN and DATETIMN: length 0
                Cell::Int(v) => {
                    self.0.push(4);
                    self.0.extend_from_slice(&v.to_le_bytes());
                }
                Cell::Real(v) => {
                    self.0.push(4);
                    self.0.extend_from_slice(&v.to_le_bytes());
                }
                Cell::Text(s) => {
                    let units: Vec<u16> = s.encode_utf16().collect();
                    self.u16((units.len() * 2) as u16);
                    units.iter().for_each(|u| self.u16(*u));
                }
                Cell::DateTime(days, ticks) => {
                    self.0.push(8);
                    self.0.extend_from_slice(&days.to_le_bytes());
                    self.u32(*ticks);
                }
                Cell::Bit(b) => self.0.extend_from_slice(&[1, u8::from(*b)]),
                Cell::TinyInt(v) => self.0.extend_from_slice(&[1, *v]),
                Cell::Bytes(b) => {
                    self.u16(b.len() as u16);
                    self.0.extend_from_slice(b);
                }
                Cell::NullVar => self.u16(0xFFFF),
            }
        }
    }

    /// DONE (0xFD), DONEPROC (0xFE) or DONEINPROC (0xFF).
    pub fn done(&mut self, token: u8, status: u16, rows: u64) {
        self.0.push(token);
        self.u16(status);
        self.u16(0xC1); // current command: SELECT
        self.0.extend_from_slice(&rows.to_le_bytes());
    }

    pub fn return_status(&mut self, status: i32) {
        self.0.push(0x79);
        self.u32(status as u32);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prelogin_answer_says_no_encryption() {
        let answer = prelogin_response((16, 0, 1000), ENCRYPT_NOT_SUP);
        // First option is VERSION at offset 21 (4 options * 5 + terminator).
        assert_eq!(&answer[..5], &[0x00, 0, 21, 0, 6]);
        let encryption_offset = usize::from(u16::from_be_bytes([answer[6], answer[7]]));
        assert_eq!(answer[encryption_offset], 0x02);
        assert_eq!(parse_prelogin(&answer).unwrap().encryption, ENCRYPT_NOT_SUP);
    }

    /// MS-TDS 2.2.6.5's table, row by row, for a server with a certificate
    /// that does not force encryption (OFF), one that does (ON), and one
    /// without (NOT_SUP).
    #[test]
    fn encryption_is_negotiated_as_ms_tds_tabulates_it() {
        use Tls::*;
        for (client, server, answer, session) in [
            (ENCRYPT_OFF, ENCRYPT_OFF, ENCRYPT_OFF, LoginOnly),
            (ENCRYPT_ON, ENCRYPT_OFF, ENCRYPT_ON, Whole),
            (ENCRYPT_REQ, ENCRYPT_OFF, ENCRYPT_ON, Whole),
            (ENCRYPT_NOT_SUP, ENCRYPT_OFF, ENCRYPT_NOT_SUP, None),
            (ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_REQ, Whole),
            (ENCRYPT_ON, ENCRYPT_ON, ENCRYPT_ON, Whole),
            (ENCRYPT_REQ, ENCRYPT_ON, ENCRYPT_ON, Whole),
            (ENCRYPT_NOT_SUP, ENCRYPT_ON, ENCRYPT_REQ, Refused),
            (ENCRYPT_OFF, ENCRYPT_NOT_SUP, ENCRYPT_NOT_SUP, None),
            (ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_NOT_SUP, Refused),
            (ENCRYPT_REQ, ENCRYPT_NOT_SUP, ENCRYPT_NOT_SUP, Refused),
            (ENCRYPT_NOT_SUP, ENCRYPT_NOT_SUP, ENCRYPT_NOT_SUP, None),
        ] {
            assert_eq!(
                negotiate(client, server),
                (answer, session),
                "client {client}, server {server}"
            );
        }
    }

    #[test]
    fn the_client_certificate_bit_does_not_change_the_level() {
        let mut prelogin = prelogin_response((16, 0, 1000), ENCRYPT_ON | 0x80);
        assert_eq!(parse_prelogin(&prelogin).unwrap().encryption, ENCRYPT_ON);
        // Without the option no TLS is begun: the client offered none.
        prelogin = vec![0xFF];
        assert_eq!(
            parse_prelogin(&prelogin).unwrap().encryption,
            ENCRYPT_NOT_SUP
        );
    }

    #[test]
    fn truncated_messages_are_errors() {
        assert!(parse_login7(&[0; 20]).is_err());
        assert!(parse_rpc(&[0x16, 0, 0, 0]).is_err());
        assert!(parse_prelogin(&[0x01, 0, 10]).is_err());
    }

    #[tokio::test]
    async fn messages_are_split_into_packets_and_reassembled() {
        let payload: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
        let mut wire = Vec::new();
        write_message(&mut wire, PACKET_REPLY, &payload, 4096)
            .await
            .unwrap();
        assert_eq!(wire.len(), payload.len() + 3 * HEADER);
        let (kind, back) = read_message(&mut wire.as_slice()).await.unwrap().unwrap();
        assert_eq!((kind, back), (PACKET_REPLY, payload));
    }
}

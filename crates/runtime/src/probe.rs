//! A minimal blocking HTTP/1.1 exchange with the local node, for the
//! lifecycle commands (`start` waits on `/readyz`, `status` and
//! `checkpoint` ask the running node). Loopback and short timeouts only;
//! the full client is `everarcade-client`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Largest response read.
const RESPONSE_BYTES_MAX: u64 = 1 << 20;

/// A response: status and body.
pub struct Reply {
    /// HTTP status.
    pub status: u16,
    /// Body text.
    pub body: String,
}

/// Sends one request with `Connection: close` and reads the whole reply.
pub fn exchange(
    addr: SocketAddr,
    method: &str,
    path: &str,
    bearer: Option<&str>,
    timeout: Duration,
) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let auth = bearer
        .map(|token| format!("Authorization: Bearer {token}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.take(RESPONSE_BYTES_MAX).read_to_end(&mut raw)?;
    parse(&raw).ok_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::InvalidData, "not an HTTP/1.1 response")
    })
}

fn parse(raw: &[u8]) -> Option<Reply> {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head
        .lines()
        .next()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    let chunked = head.lines().any(|line| {
        line.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_string()
    };
    Some(Reply { status, body })
}

fn dechunk(mut body: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

/// The running node of a world: its pid and address, when the world lock
/// is held and `status.json` (written by the holder) names an address.
pub struct RunningNode {
    /// The lock holder.
    pub pid: u32,
    /// Where it listens, if recorded.
    pub address: Option<SocketAddr>,
}

/// Finds the node that runs the world in `dir`, if one does.
pub fn running_node(
    dir: &everarcade_store::WorldDir,
) -> Result<Option<RunningNode>, everarcade_store::StoreError> {
    use everarcade_store::meta::{StatusFile, read_json};
    use everarcade_store::{DiskStorage, LockState, WorldLock};
    let LockState::Held { pid } = WorldLock::probe(&dir.lock())? else {
        return Ok(None);
    };
    let status: Option<StatusFile> = read_json(&DiskStorage, &dir.status()).ok();
    let address = status
        .filter(|s| s.state == "running" && s.pid == Some(pid))
        .and_then(|s| s.addresses.first().and_then(|a| a.parse().ok()));
    Ok(Some(RunningNode { pid, address }))
}

/// The admin token: `EVERARCADE_ADMIN_TOKEN`, else `<root>/admin.token`.
pub fn admin_token(dir: &everarcade_store::WorldDir) -> Option<String> {
    if let Ok(token) = std::env::var("EVERARCADE_ADMIN_TOKEN") {
        return Some(token);
    }
    std::fs::read_to_string(dir.admin_token())
        .ok()
        .map(|text| text.trim().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_replies() {
        let plain = parse(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok").unwrap();
        assert_eq!((plain.status, plain.body.as_str()), (200, "ok"));
        let chunked = parse(
            b"HTTP/1.1 503 X\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((chunked.status, chunked.body.as_str()), (503, "abcde"));
        assert!(parse(b"garbage").is_none());
    }
}

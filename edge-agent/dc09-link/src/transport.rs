//! One request/response exchange on one path: send a frame, wait for the matching reply.

use crate::config::{PathConfig, Transport};
use sia_dc09::{Key, Response, ResponseKind, parse_response};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::time::{Instant, timeout_at};

/// Outcome of one attempt.
#[derive(Debug)]
pub enum Exchange {
    Reply(Response),
    /// Timeout, connection failure or a reply that could not be parsed.
    Failed(String),
}

/// Connection state of one path; a TCP connection is kept between messages and dropped after
/// any failure (so a late reply can never be taken for the next message's).
pub struct Conn {
    cfg: PathConfig,
    tcp: Option<TcpStream>,
    udp: Option<UdpSocket>,
}

fn matches(resp: &Response, seq: u16) -> bool {
    resp.kind == ResponseKind::Nak || resp.seq == seq
}

impl Conn {
    pub fn new(cfg: PathConfig) -> Conn {
        Conn {
            cfg,
            tcp: None,
            udp: None,
        }
    }

    pub fn drop_connection(&mut self) {
        self.tcp = None;
        self.udp = None;
    }

    /// Sends `frame` (sequence `seq`) and waits up to `wait` for its reply.
    pub async fn exchange(
        &mut self,
        frame: &[u8],
        seq: u16,
        key: Option<&Key>,
        wait: Duration,
    ) -> Exchange {
        let deadline = Instant::now() + wait;
        let r = match self.cfg.transport {
            Transport::Tcp => self.tcp_exchange(frame, seq, key, deadline).await,
            Transport::Udp => self.udp_exchange(frame, seq, key, deadline).await,
        };
        match r {
            Ok(resp) => Exchange::Reply(resp),
            Err(e) => {
                self.drop_connection();
                Exchange::Failed(e.to_string())
            }
        }
    }

    async fn tcp_exchange(
        &mut self,
        frame: &[u8],
        seq: u16,
        key: Option<&Key>,
        deadline: Instant,
    ) -> io::Result<Response> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no reply in time");
        if self.tcp.is_none() {
            let s = timeout_at(deadline, TcpStream::connect(self.cfg.addr))
                .await
                .map_err(|_| timed_out())??;
            s.set_nodelay(true)?;
            self.tcp = Some(s);
        }
        let s = self.tcp.as_mut().expect("connected above");
        timeout_at(deadline, s.write_all(frame))
            .await
            .map_err(|_| timed_out())??;
        let mut buf = Vec::with_capacity(256);
        loop {
            let mut chunk = [0u8; 1024];
            let n = timeout_at(deadline, s.read(&mut chunk))
                .await
                .map_err(|_| timed_out())??;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "receiver closed the connection",
                ));
            }
            buf.extend_from_slice(&chunk[..n]);
            // replies are <LF>...<CR>; take complete ones, skip stale ones
            while let Some(end) = buf.iter().position(|&b| b == b'\r') {
                let one: Vec<u8> = buf.drain(..=end).collect();
                let start = one.iter().position(|&b| b == b'\n').unwrap_or(0);
                match parse_response(&one[start..], key) {
                    Ok(resp) if matches(&resp, seq) => return Ok(resp),
                    Ok(_) => continue,
                    Err(e) => {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("bad reply: {e}"),
                        ));
                    }
                }
            }
            if buf.len() > 4096 {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "reply too long"));
            }
        }
    }

    async fn udp_exchange(
        &mut self,
        frame: &[u8],
        seq: u16,
        key: Option<&Key>,
        deadline: Instant,
    ) -> io::Result<Response> {
        let timed_out = || io::Error::new(io::ErrorKind::TimedOut, "no reply in time");
        if self.udp.is_none() {
            let local: SocketAddr = match self.cfg.addr {
                SocketAddr::V4(a) if a.ip().is_loopback() => "127.0.0.1:0".parse().expect("addr"),
                SocketAddr::V4(_) => "0.0.0.0:0".parse().expect("addr"),
                SocketAddr::V6(a) if a.ip().is_loopback() => "[::1]:0".parse().expect("addr"),
                SocketAddr::V6(_) => "[::]:0".parse().expect("addr"),
            };
            let s = UdpSocket::bind(local).await?;
            s.connect(self.cfg.addr).await?;
            self.udp = Some(s);
        }
        let s = self.udp.as_ref().expect("bound above");
        s.send(frame).await?;
        let mut buf = [0u8; 2048];
        loop {
            let n = timeout_at(deadline, s.recv(&mut buf))
                .await
                .map_err(|_| timed_out())??;
            let d = &buf[..n];
            let start = d.iter().position(|&b| b == b'\n').unwrap_or(0);
            match parse_response(&d[start..], key) {
                Ok(resp) if matches(&resp, seq) => return Ok(resp),
                Ok(_) => continue,
                // garbage datagram: keep waiting for the real reply until the deadline
                Err(_) => continue,
            }
        }
    }
}

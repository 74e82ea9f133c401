//! The RPC channel: the raft RPCs a cluster sends many times a second — append-entries
//! (heartbeats included) and a follower's read-index requests — over a mutual-TLS stream of
//! their own instead of HTTP/2 requests.
//!
//! Over HTTP/2 every RPC paid for a request through reqwest's pool, HPACK, stream and
//! flow-control bookkeeping and the h2 connection task on both nodes: more than a third of a
//! follower read's CPU on the two nodes together, and a third of a leader's CPU per replicated
//! write. This channel is a TLS connection to the same cluster port, negotiated with its own
//! ALPN protocol ([`ALPN_RPC`]) and authenticated exactly like the HTTP/2 connections (the
//! server requires a client certificate from the cluster CA, the client checks the server's).
//! On it, one exchange at a time:
//!
//! * request: operation (u8: [`OP_READ_INDEX`] or [`OP_APPEND`]), the sender's cluster time
//!   (i64, ns since the Unix epoch), body length (u32, at most [`MAX_CLUSTER_BODY`]), the JSON
//!   body the HTTP/2 RPC would carry;
//! * answer: HTTP status (u16), the responder's raw clock (i64, ns), body length (u32, at most
//!   [`MAX_CLUSTER_BODY`]), the JSON body.
//!
//! All integers are big-endian. The leader (or follower) answers through the same
//! [`RaftNode::handle_rpc`] as on HTTP/2, so admission checks, answers and the clock headers'
//! meaning are the same. Votes and snapshots stay on HTTP/2 (rare, and a snapshot is streamed).
//!
//! The ALPN name carries the protocol's version. A peer that does not offer it (an older binary
//! during a rolling upgrade) refuses the handshake with `no_application_protocol`; the client
//! then uses HTTP/2 for that address for [`FALLBACK_FOR`] before trying again.
//!
//! The client **takes** a connection out of its pool for an exchange and puts it back only
//! after a complete answer, so an exchange abandoned half-way (a timeout) drops its connection
//! and a late answer can never be read as the answer to a later request (a stale read index
//! would break linearizability). An exchange that fails on a pooled connection (the peer
//! restarted or closed an idle channel) is sent once more on a fresh one: both operations are
//! safe to repeat (an append of entries a follower already has changes nothing).

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_rustls::client::TlsStream;

use crate::network::{paths, TransportError};
use crate::node::RaftNode;
use crate::server::MAX_CLUSTER_BODY;
use crate::tls::CLUSTER_SERVER_NAME;

/// ALPN protocol of the RPC channel (the suffix is the protocol version).
pub const ALPN_RPC: &[u8] = b"coffer-rpc/1";
/// "Give me a read index" (empty body).
pub const OP_READ_INDEX: u8 = 1;
/// Append-entries (body: openraft's request as JSON).
pub const OP_APPEND: u8 = 2;
/// How long a node keeps a channel without requests open.
const SERVER_IDLE: Duration = Duration::from_secs(120);
/// How long a node waits for a slow peer to take an answer.
const SERVER_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// A client does not reuse a connection idle for this long (the peer may be closing it).
const CLIENT_IDLE: Duration = Duration::from_secs(60);
/// Idle connections kept per peer (one per concurrent exchange seen; normally one).
const IDLE_PER_PEER: usize = 2;
/// How long a peer that does not speak the channel is asked over HTTP/2 instead.
const FALLBACK_FOR: Duration = Duration::from_secs(60);
/// Connection set-up limit (TCP and TLS), like the HTTP/2 client's.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// The raft path an operation stands for, and back.
pub(crate) fn op_of(path: &str) -> Option<u8> {
    match path {
        paths::READ_INDEX => Some(OP_READ_INDEX),
        paths::APPEND => Some(OP_APPEND),
        _ => None,
    }
}

fn path_of(op: u8) -> Option<&'static str> {
    match op {
        OP_READ_INDEX => Some(paths::READ_INDEX),
        OP_APPEND => Some(paths::APPEND),
        _ => None,
    }
}

/// One request or answer: a small fixed head and a body.
#[cfg_attr(test, derive(PartialEq, Eq))]
pub(crate) struct Frame {
    /// The operation (request) or the HTTP status (answer).
    pub(crate) code: u16,
    /// The sender's cluster time (request) or the responder's raw clock (answer).
    pub(crate) time_ns: i64,
    pub(crate) body: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    // The body is ciphertext and protocol data, but large: its length says enough.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frame")
            .field("code", &self.code)
            .field("time_ns", &self.time_ns)
            .field("len", &self.body.len())
            .finish()
    }
}

impl Frame {
    /// The frame's head (`code_len` bytes of code, the time, the body length) and its length.
    fn head(&self, code_len: usize) -> ([u8; 14], usize) {
        let mut head = [0u8; 14];
        if code_len == 1 {
            head[0] = self.code as u8;
        } else {
            head[..2].copy_from_slice(&self.code.to_be_bytes());
        }
        head[code_len..code_len + 8].copy_from_slice(&self.time_ns.to_be_bytes());
        // Bodies longer than the limit are refused by the caller before they get here.
        head[code_len + 8..code_len + 12].copy_from_slice(&(self.body.len() as u32).to_be_bytes());
        (head, code_len + 12)
    }

    fn encode(&self, code_len: usize) -> Vec<u8> {
        let (head, len) = self.head(code_len);
        let mut out = Vec::with_capacity(len + self.body.len());
        out.extend_from_slice(&head[..len]);
        out.extend_from_slice(&self.body);
        out
    }

    #[cfg(test)]
    fn encode_request(&self) -> Vec<u8> {
        self.encode(1)
    }

    /// Writes this frame as a request: head and body in vectored writes, so the body (an
    /// append-entries request can be hundreds of KiB) is not first copied behind its head; TLS
    /// copies it once into its record.
    async fn write_request<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> std::io::Result<()> {
        let (head, len) = self.head(1);
        let mut bufs = [IoSlice::new(&head[..len]), IoSlice::new(&self.body)];
        let mut left = &mut bufs[..];
        while !left.is_empty() {
            let n = stream.write_vectored(left).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut left, n);
        }
        Ok(())
    }

    fn encode_answer(&self) -> Vec<u8> {
        self.encode(2)
    }

    async fn read<S: AsyncRead + Unpin>(stream: &mut S, code_len: usize) -> std::io::Result<Self> {
        let mut head = [0u8; 14];
        let head = &mut head[..code_len + 12];
        stream.read_exact(head).await?;
        let code = if code_len == 1 { u16::from(head[0]) } else { u16::from_be_bytes([head[0], head[1]]) };
        let mut time = [0u8; 8];
        time.copy_from_slice(&head[code_len..code_len + 8]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[code_len + 8..code_len + 12]);
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_CLUSTER_BODY {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("cluster RPC body of {len} bytes (at most {MAX_CLUSTER_BODY})"),
            ));
        }
        // Grown as the bytes arrive: a length alone reserves little.
        let mut body = Vec::with_capacity(len.min(64 * 1024));
        (&mut *stream).take(len as u64).read_to_end(&mut body).await?;
        if body.len() != len {
            return Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "cluster RPC body cut short"));
        }
        Ok(Self { code, time_ns: i64::from_be_bytes(time), body })
    }

    async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Self> {
        Self::read(stream, 1).await
    }

    async fn read_answer<S: AsyncRead + Unpin>(stream: &mut S) -> std::io::Result<Self> {
        Self::read(stream, 2).await
    }
}

/// Server side: answers requests on an accepted channel until the peer closes it, stays idle
/// for [`SERVER_IDLE`], or sends something this node does not understand.
pub(crate) async fn serve<S>(mut stream: S, node: Arc<RaftNode>, peer: SocketAddr)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        let request = match tokio::time::timeout(SERVER_IDLE, Frame::read_request(&mut stream)).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                if e.kind() == std::io::ErrorKind::InvalidData {
                    tracing::debug!(%peer, error = %e, "refusing a cluster RPC on the channel; closing it");
                }
                return;
            }
            Err(_) => return,
        };
        let Some(path) = u8::try_from(request.code).ok().and_then(path_of) else {
            tracing::debug!(%peer, op = request.code, "unknown operation on the RPC channel; closing it");
            return;
        };
        let (status, body) = node.handle_rpc(path, &request.body).await;
        if path == paths::APPEND && status == http::StatusCode::OK {
            crate::server::adopt_leader_clock(request.time_ns);
        }
        let answer = Frame { code: status.as_u16(), time_ns: coffer_storage::clock::raw_unix_ns(), body };
        if answer.body.len() > MAX_CLUSTER_BODY {
            return;
        }
        let sent = async {
            stream.write_all(&answer.encode_answer()).await?;
            stream.flush().await
        };
        match tokio::time::timeout(SERVER_WRITE_TIMEOUT, sent).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => return,
        }
    }
}

/// One open channel to a peer.
struct Conn {
    stream: TlsStream<TcpStream>,
    last_used: Instant,
}

/// What an attempt to open a channel found.
enum Opened {
    Conn(Box<Conn>),
    /// The peer does not offer the channel's ALPN protocol.
    Unsupported,
}

/// Client side: idle channels per peer address, and the addresses that turned out not to
/// speak it.
pub(crate) struct Channel {
    config: Arc<rustls::ClientConfig>,
    source: Option<IpAddr>,
    idle: Mutex<HashMap<String, Vec<Conn>>>,
    fallback: Mutex<HashMap<String, Instant>>,
}

impl Channel {
    /// A channel client from the cluster's client TLS configuration (its ALPN list is replaced).
    pub(crate) fn new(mut config: rustls::ClientConfig, source: Option<IpAddr>) -> Self {
        config.alpn_protocols = vec![ALPN_RPC.to_vec()];
        Self {
            config: Arc::new(config),
            source,
            idle: Mutex::new(HashMap::new()),
            fallback: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `addr` is, for now, asked over HTTP/2 instead.
    pub(crate) fn uses_fallback(&self, addr: &str) -> bool {
        let mut fallback = self.fallback.lock().unwrap_or_else(|p| p.into_inner());
        match fallback.get(addr) {
            Some(since) if since.elapsed() < FALLBACK_FOR => true,
            Some(_) => {
                fallback.remove(addr);
                false
            }
            None => false,
        }
    }

    /// Sends `request` to `addr` and returns its answer; `Ok(None)` when the peer does not speak
    /// the channel (the caller uses HTTP/2). Cancel-safe: a dropped call drops the connection it
    /// held, never returns it to the pool.
    pub(crate) async fn call(&self, addr: &str, request: &Frame) -> Result<Option<Frame>, TransportError> {
        if request.body.len() > MAX_CLUSTER_BODY {
            return Err(TransportError::BadResponse {
                addr: addr.to_owned(),
                reason: format!("request of {} bytes (at most {MAX_CLUSTER_BODY})", request.body.len()),
            });
        }
        if let Some(mut conn) = self.take_idle(addr) {
            if let Ok(answer) = exchange(&mut conn.stream, request).await {
                self.put_back(addr, conn);
                return Ok(Some(answer));
            }
            // The peer closed an idle channel or restarted: once more on a fresh one.
        }
        let mut conn = match self.open(addr).await? {
            Opened::Conn(c) => c,
            Opened::Unsupported => {
                tracing::info!(addr, "peer does not offer the RPC channel; using HTTP/2 for it");
                self.fallback
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(addr.to_owned(), Instant::now());
                return Ok(None);
            }
        };
        match exchange(&mut conn.stream, request).await {
            Ok(answer) => {
                self.put_back(addr, *conn);
                Ok(Some(answer))
            }
            Err(e) => Err(TransportError::Unreachable {
                addr: addr.to_owned(),
                reason: format!("RPC channel: {e}"),
                sent: true,
            }),
        }
    }

    fn take_idle(&self, addr: &str) -> Option<Conn> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let conns = idle.get_mut(addr)?;
        while let Some(conn) = conns.pop() {
            if conn.last_used.elapsed() < CLIENT_IDLE {
                return Some(conn);
            }
        }
        None
    }

    fn put_back(&self, addr: &str, mut conn: Conn) {
        conn.last_used = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        // Connections to peers no longer called (a removed node, an old address) are closed
        // once they are too old to be used.
        idle.retain(|_, conns| {
            conns.retain(|c| c.last_used.elapsed() < CLIENT_IDLE);
            !conns.is_empty()
        });
        let conns = idle.entry(addr.to_owned()).or_default();
        if conns.len() < IDLE_PER_PEER {
            conns.push(conn);
        }
    }

    /// Connects to `addr` (from the node's source address) and completes the TLS handshake.
    async fn open(&self, addr: &str) -> Result<Opened, TransportError> {
        let unreachable =
            |reason: String| TransportError::Unreachable { addr: addr.to_owned(), reason, sent: false };
        let opening = async {
            let target = self.resolve(addr).await?;
            let socket = if target.is_ipv4() { TcpSocket::new_v4() } else { TcpSocket::new_v6() }
                .map_err(|e| unreachable(format!("socket: {e}")))?;
            if let Some(ip) = self.source.filter(|ip| ip.is_ipv4() == target.is_ipv4()) {
                socket.bind(SocketAddr::new(ip, 0)).map_err(|e| unreachable(format!("bind {ip}: {e}")))?;
            }
            let tcp = socket.connect(target).await.map_err(|e| unreachable(format!("connect: {e}")))?;
            // Small requests and answers: never wait for Nagle.
            let _ = tcp.set_nodelay(true);
            let name = ServerName::try_from(CLUSTER_SERVER_NAME)
                .map_err(|e| unreachable(format!("cluster server name: {e}")))?;
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
            match connector.connect(name, tcp).await {
                Ok(stream) if stream.get_ref().1.alpn_protocol() == Some(ALPN_RPC) => {
                    Ok(Opened::Conn(Box::new(Conn { stream, last_used: Instant::now() })))
                }
                Ok(_) => Ok(Opened::Unsupported),
                Err(e) if refused_protocol(&e) => Ok(Opened::Unsupported),
                Err(e) => Err(unreachable(format!("TLS handshake: {e}"))),
            }
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, opening).await {
            Ok(r) => r,
            Err(_) => Err(unreachable(format!("no connection within {CONNECT_TIMEOUT:?}"))),
        }
    }

    async fn resolve(&self, addr: &str) -> Result<SocketAddr, TransportError> {
        let unreachable =
            |reason: String| TransportError::Unreachable { addr: addr.to_owned(), reason, sent: false };
        let found: Vec<SocketAddr> =
            tokio::net::lookup_host(addr).await.map_err(|e| unreachable(format!("resolve: {e}")))?.collect();
        let same_family = |a: &&SocketAddr| self.source.is_none_or(|s| s.is_ipv4() == a.is_ipv4());
        found
            .iter()
            .find(same_family)
            .or(found.first())
            .copied()
            .ok_or_else(|| unreachable("resolves to no address".into()))
    }
}

/// Sends one request and reads its answer.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    request: &Frame,
) -> std::io::Result<Frame> {
    request.write_request(stream).await?;
    stream.flush().await?;
    Frame::read_answer(stream).await
}

/// Whether a handshake failed because the server offers none of our ALPN protocols.
fn refused_protocol(e: &std::io::Error) -> bool {
    e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>()).is_some_and(|r| {
        matches!(
            r,
            rustls::Error::AlertReceived(rustls::AlertDescription::NoApplicationProtocol)
                | rustls::Error::NoApplicationProtocol
        )
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::tls::{client_config, generate_ca, issue_node_cert, server_config};
    use tokio::net::TcpListener;

    fn answer(status: u16, body: &[u8]) -> Frame {
        Frame { code: status, time_ns: -5, body: body.to_vec() }
    }

    fn read_index() -> Frame {
        Frame { code: u16::from(OP_READ_INDEX), time_ns: 42, body: Vec::new() }
    }

    /// A request goes out in vectored writes that the stream may take in pieces of any size
    /// (a duplex pipe of 100 bytes takes at most that much, and only from the first slice):
    /// the peer reads exactly the frame, whatever the split — also for an empty body.
    #[tokio::test]
    async fn a_request_written_in_pieces_arrives_whole() {
        for body in [Vec::new(), b"{}".to_vec(), (0..200_000u32).map(|i| (i % 251) as u8).collect()] {
            let (mut a, mut b) = tokio::io::duplex(100);
            let append = Frame { code: u16::from(OP_APPEND), time_ns: -7, body };
            let expected = append.encode_request();
            let both = async { tokio::join!(append.write_request(&mut a), Frame::read_request(&mut b)) };
            let (sent, read) = tokio::time::timeout(Duration::from_secs(20), both)
                .await
                .expect("the frame never arrived whole");
            sent.unwrap();
            assert_eq!(read.unwrap(), append);
            assert_eq!(expected.len(), 13 + append.body.len());
        }
    }

    #[tokio::test]
    async fn frames_round_trip_and_oversized_ones_are_refused() {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let append = Frame { code: u16::from(OP_APPEND), time_ns: i64::MIN, body: b"{}".to_vec() };
        a.write_all(&append.encode_request()).await.unwrap();
        assert_eq!(Frame::read_request(&mut b).await.unwrap(), append);
        a.write_all(&answer(503, br#"{"Index":7}"#).encode_answer()).await.unwrap();
        assert_eq!(Frame::read_answer(&mut b).await.unwrap(), answer(503, br#"{"Index":7}"#));

        let mut head = 200u16.to_be_bytes().to_vec();
        head.extend_from_slice(&0i64.to_be_bytes());
        head.extend_from_slice(&(MAX_CLUSTER_BODY as u32 + 1).to_be_bytes());
        a.write_all(&head).await.unwrap();
        let err = Frame::read_answer(&mut b).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidData);
    }

    #[tokio::test]
    async fn a_truncated_answer_is_an_error_not_a_short_body() {
        let (mut a, mut b) = tokio::io::duplex(1024);
        let frame = answer(200, br#"{"Index":7}"#).encode_answer();
        a.write_all(&frame[..frame.len() - 3]).await.unwrap();
        drop(a);
        assert!(Frame::read_answer(&mut b).await.is_err());
    }

    #[test]
    fn only_append_and_read_index_travel_on_the_channel() {
        assert_eq!(op_of(paths::APPEND).and_then(path_of), Some(paths::APPEND));
        assert_eq!(op_of(paths::READ_INDEX).and_then(path_of), Some(paths::READ_INDEX));
        assert_eq!(op_of(paths::VOTE), None);
        assert_eq!(op_of(paths::SNAPSHOT), None);
        assert_eq!(path_of(0), None);
    }

    /// A cluster CA, one node's client config for the channel, and a server config.
    fn pki() -> (rustls::ClientConfig, rustls::ServerConfig) {
        let ca = generate_ca("test cluster").unwrap();
        let node = issue_node_cert(&ca, "node-1", &["127.0.0.1".into()]).unwrap();
        (client_config(&ca.cert_pem, &node).unwrap(), (*server_config(&ca.cert_pem, &node).unwrap()).clone())
    }

    /// A stand-in peer: answers the n-th request on each connection with what `reply` gives
    /// for (connection number, request number), after its delay, and closes a connection after
    /// `close_after` requests. The notify fires after every answer written.
    async fn fake_peer(
        config: rustls::ServerConfig,
        reply: impl Fn(usize, usize) -> (Duration, Frame) + Send + Sync + 'static,
        close_after: Option<usize>,
    ) -> (String, Arc<tokio::sync::Notify>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let reply = Arc::new(reply);
        let written = Arc::new(tokio::sync::Notify::new());
        let notify = Arc::clone(&written);
        tokio::spawn(async move {
            for conn_no in 0.. {
                let (tcp, _) = listener.accept().await.unwrap();
                let acceptor = acceptor.clone();
                let reply = Arc::clone(&reply);
                let notify = Arc::clone(&notify);
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    for req_no in 0.. {
                        if close_after == Some(req_no) {
                            return;
                        }
                        let Ok(request) = Frame::read_request(&mut tls).await else { return };
                        assert_eq!(request, read_index());
                        let (delay, frame) = reply(conn_no, req_no);
                        tokio::time::sleep(delay).await;
                        let ok = tls.write_all(&frame.encode_answer()).await.is_ok();
                        let _ = tls.flush().await;
                        notify.notify_one();
                        if !ok {
                            return;
                        }
                    }
                });
            }
        });
        (addr, written)
    }

    fn index(i: usize) -> Frame {
        answer(200, format!(r#"{{"Index":{i}}}"#).as_bytes())
    }

    #[tokio::test]
    async fn a_channel_is_reused_and_reopened_when_the_peer_closed_it() {
        let (client, server) = pki();
        // Each connection answers one request and closes: the second call finds its pooled
        // connection dead and must still get an answer, on a new connection.
        let (addr, _) = fake_peer(server, |conn, _| (Duration::ZERO, index(conn)), Some(1)).await;
        let chan = Channel::new(client, None);
        assert_eq!(chan.call(&addr, &read_index()).await.unwrap(), Some(index(0)));
        assert_eq!(chan.call(&addr, &read_index()).await.unwrap(), Some(index(1)));
        assert!(!chan.uses_fallback(&addr));
    }

    #[tokio::test]
    async fn an_abandoned_exchange_never_answers_a_later_one() {
        let (client, server) = pki();
        // The first answer on the first connection is slow and says 1; every other answer is
        // quick and says 100 + 10 × connection + request. A caller that gave up on the slow
        // one must never read its late answer.
        let (addr, written) = fake_peer(
            server,
            |conn, req| match (conn, req) {
                (0, 0) => (Duration::from_millis(200), index(1)),
                _ => (Duration::ZERO, index(100 + 10 * conn + req)),
            },
            None,
        )
        .await;
        let chan = Channel::new(client, None);
        assert!(tokio::time::timeout(Duration::from_millis(20), chan.call(&addr, &read_index()))
            .await
            .is_err());
        // The late answer has gone out (onto the abandoned connection) before the next call.
        tokio::time::timeout(Duration::from_secs(10), written.notified()).await.unwrap();
        assert_eq!(chan.call(&addr, &read_index()).await.unwrap(), Some(index(110)));
        assert_eq!(chan.call(&addr, &read_index()).await.unwrap(), Some(index(111)));
    }

    #[tokio::test]
    async fn a_peer_without_the_channel_is_asked_over_http2() {
        let (client, mut server) = pki();
        server.alpn_protocols = vec![crate::tls::ALPN_H2.to_vec()];
        let (addr, _) = fake_peer(server, |_, _| (Duration::ZERO, index(9)), None).await;
        let chan = Channel::new(client, None);
        assert_eq!(chan.call(&addr, &read_index()).await.unwrap(), None);
        assert!(chan.uses_fallback(&addr));
    }

    #[tokio::test]
    async fn a_server_outside_the_cluster_is_unreachable() {
        let (client, _) = pki();
        let (_, other) = pki(); // another cluster's CA and certificate
        let (addr, _) = fake_peer(other, |_, _| (Duration::ZERO, index(9)), None).await;
        let chan = Channel::new(client, None);
        assert!(matches!(
            chan.call(&addr, &read_index()).await,
            Err(TransportError::Unreachable { sent: false, .. })
        ));
    }
}

//! A fault-injecting TCP proxy the test harness owns.
//!
//! One proxy sits in front of each node's cluster port (and, optionally, its API port). Nodes
//! dial their peers from their own loopback address (`127.0.0.N`), so the proxy in front of
//! node `j` knows which node `i` a connection comes from and applies the fault set for the
//! directed link `i → j`. A fault applies to connections already open and to new ones.
//!
//! Faults:
//! - [`Fault::Pass`]: forward both ways.
//! - [`Fault::Delay`]: forward after a delay, both ways.
//! - [`Fault::Drop`]: close the connection (and refuse new ones by closing them at once).
//! - [`Fault::Blackhole`]: keep the connection open and swallow everything (closest to a real
//!   partition: the sender sees no error, only silence).
//! - [`Fault::CutRequests`] / [`Fault::CutResponses`]: swallow only the bytes going to the node
//!   (requests of the connecting peer) or coming back from it.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What happens to a directed link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Pass,
    Delay(Duration),
    Drop,
    Blackhole,
    CutRequests,
    CutResponses,
}

/// Direction of bytes through the proxy.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Way {
    /// From the connecting peer to the node behind the proxy.
    ToNode,
    /// From the node back to the peer.
    FromNode,
}

struct Shared {
    rules: Mutex<HashMap<IpAddr, Fault>>,
    default: Mutex<Fault>,
    stop: AtomicBool,
    /// Bumped on every rule change so pumps re-check `Drop` promptly.
    generation: AtomicU64,
    /// Connections seen (for tests of the harness itself).
    accepted: AtomicU64,
}

impl Shared {
    fn fault(&self, from: IpAddr) -> Fault {
        let rules = self.rules.lock().unwrap();
        rules.get(&from).copied().unwrap_or(*self.default.lock().unwrap())
    }
}

/// A running proxy; stops when dropped.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on `listen_ip` (ephemeral port) and forwards to `target`.
    pub fn start(listen_ip: IpAddr, target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind((listen_ip, 0)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            rules: Mutex::new(HashMap::new()),
            default: Mutex::new(Fault::Pass),
            stop: AtomicBool::new(false),
            generation: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let s = Arc::clone(&shared);
        std::thread::spawn(move || accept_loop(listener, target, s));
        Proxy { addr, shared }
    }

    /// The address peers dial.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Sets the fault for connections coming from `from`.
    pub fn set(&self, from: IpAddr, fault: Fault) {
        self.shared.rules.lock().unwrap().insert(from, fault);
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Sets the fault for every source without a rule of its own.
    pub fn set_default(&self, fault: Fault) {
        *self.shared.default.lock().unwrap() = fault;
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Back to passing everything.
    pub fn heal(&self) {
        self.shared.rules.lock().unwrap().clear();
        *self.shared.default.lock().unwrap() = Fault::Pass;
        self.shared.generation.fetch_add(1, Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    while !shared.stop.load(Ordering::SeqCst) {
        match listener.accept() {
            Ok((client, peer)) => {
                shared.accepted.fetch_add(1, Ordering::SeqCst);
                if shared.fault(peer.ip()) == Fault::Drop {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(2)) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (sh1, sh2) = (Arc::clone(&shared), Arc::clone(&shared));
                let from = peer.ip();
                std::thread::spawn(move || pump(client, server, from, Way::ToNode, sh1));
                std::thread::spawn(move || pump(s2, c2, from, Way::FromNode, sh2));
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                std::thread::park_timeout(Duration::from_millis(5));
            }
            Err(_) => std::thread::park_timeout(Duration::from_millis(5)),
        }
    }
}

/// Copies `src` to `dst` applying the link's fault, until either side closes, the fault
/// drops the link, or the proxy stops.
fn pump(mut src: TcpStream, mut dst: TcpStream, from: IpAddr, way: Way, shared: Arc<Shared>) {
    let _ = src.set_read_timeout(Some(Duration::from_millis(20)));
    let mut buf = vec![0u8; 64 * 1024];
    let close = |a: &TcpStream, b: &TcpStream| {
        let _ = a.shutdown(Shutdown::Both);
        let _ = b.shutdown(Shutdown::Both);
    };
    loop {
        if shared.stop.load(Ordering::SeqCst) {
            close(&src, &dst);
            return;
        }
        let fault = shared.fault(from);
        if fault == Fault::Drop {
            close(&src, &dst);
            return;
        }
        let n = match src.read(&mut buf) {
            Ok(0) => {
                let _ = dst.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => continue,
            Err(_) => {
                close(&src, &dst);
                return;
            }
        };
        // The fault at the moment the bytes arrived decides their fate.
        match shared.fault(from) {
            Fault::Pass => {}
            Fault::Delay(d) => std::thread::park_timeout(d),
            Fault::Drop => {
                close(&src, &dst);
                return;
            }
            Fault::Blackhole => continue,
            Fault::CutRequests if way == Way::ToNode => continue,
            Fault::CutResponses if way == Way::FromNode => continue,
            Fault::CutRequests | Fault::CutResponses => {}
        }
        if dst.write_all(&buf[..n]).is_err() {
            close(&src, &dst);
            return;
        }
    }
}

/// Self-test of the proxy: pass, blackhole, drop and heal on a local echo server.
#[test]
fn proxy_passes_blackholes_drops_and_heals() {
    use crate::harness::wait_for;

    let echo = TcpListener::bind("127.0.0.1:0").unwrap();
    let target = echo.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in echo.incoming() {
            let Ok(mut c) = conn else { return };
            std::thread::spawn(move || {
                let mut b = [0u8; 1024];
                while let Ok(n) = c.read(&mut b) {
                    if n == 0 || c.write_all(&b[..n]).is_err() {
                        return;
                    }
                }
            });
        }
    });
    let me: IpAddr = "127.0.0.9".parse().unwrap();
    let proxy = Proxy::start("127.0.0.1".parse().unwrap(), target);
    let dial = || {
        let sock = connect_from(me, proxy.addr());
        sock.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
        sock
    };
    let roundtrip = |s: &mut TcpStream| -> bool {
        if s.write_all(b"ping").is_err() {
            return false;
        }
        let mut b = [0u8; 4];
        matches!(s.read_exact(&mut b), Ok(()) if &b == b"ping")
    };
    let mut s = dial();
    assert!(roundtrip(&mut s), "pass");
    proxy.set(me, Fault::Blackhole);
    assert!(!roundtrip(&mut s), "blackhole still answered");
    proxy.set(me, Fault::Drop);
    wait_for("the dropped connection to close", Duration::from_secs(5), || {
        let mut b = [0u8; 1];
        match s.read(&mut b) {
            Ok(0) | Err(_) => Some(()),
            Ok(_) => None,
        }
    });
    proxy.heal();
    let mut s = dial();
    assert!(roundtrip(&mut s), "healed");
    proxy.set(me, Fault::CutResponses);
    assert!(!roundtrip(&mut s), "responses were cut");
}

/// Connects to `to` from the local address `from` (std cannot bind before connecting).
pub fn connect_from(from: IpAddr, to: SocketAddr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let (IpAddr::V4(src), SocketAddr::V4(dst)) = (from, to) else { panic!("IPv4 only") };
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::empty(), None).unwrap();
    bind(fd.as_raw_fd(), &SockaddrIn::from(std::net::SocketAddrV4::new(src, 0))).unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(dst)).unwrap();
    TcpStream::from(fd)
}

//! An HTTP CONNECT proxy on loopback, the kind a company puts between its functions and AWS.
//!
//! The functions' HTTPS client takes its proxy from the environment (`HTTPS_PROXY`), as the
//! SDK's default client does. This proxy answers `CONNECT host:port`, records the target, and
//! tunnels the bytes both ways without looking at them: TLS runs end to end through it, so a
//! test proves both that the client used the proxy and that it still checked the server.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The longest request head the proxy reads before it gives up on a client.
const MAX_HEAD: usize = 8 * 1024;

/// A running proxy. Dropping it stops accepting connections.
pub struct ConnectProxy {
    port: u16,
    targets: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl ConnectProxy {
    pub async fn start() -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("local address").port();
        let targets = Arc::new(Mutex::new(Vec::new()));
        let server = {
            let targets = targets.clone();
            tokio::spawn(async move {
                while let Ok((client, _)) = listener.accept().await {
                    tokio::spawn(tunnel(client, targets.clone()));
                }
            })
        };
        Self {
            port,
            targets,
            server,
        }
    }

    /// The proxy's URL, the value of `HTTPS_PROXY`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The `host:port` of every CONNECT received so far, oldest first.
    pub fn targets(&self) -> Vec<String> {
        self.targets.lock().expect("proxy targets").clone()
    }
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Serves one client: reads its CONNECT, opens the target and copies bytes until either side
/// closes. Anything but a CONNECT is answered 405 and closed.
async fn tunnel(mut client: TcpStream, targets: Arc<Mutex<Vec<String>>>) {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte).await {
            Ok(1) if head.len() < MAX_HEAD => head.push(byte[0]),
            _ => return,
        }
    }
    let head = String::from_utf8_lossy(&head);
    let target = match head.split_whitespace().collect::<Vec<_>>()[..] {
        ["CONNECT", target, ..] => target.to_string(),
        _ => {
            let _ = client
                .write_all(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                .await;
            return;
        }
    };
    targets.lock().expect("proxy targets").push(target.clone());
    let Ok(mut server) = TcpStream::connect(&target).await else {
        let _ = client
            .write_all(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            .await;
        return;
    };
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_ok()
    {
        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
    }
}

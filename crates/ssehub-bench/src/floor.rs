//! The floor: a bare writer that accepts the same connections, sends SSE
//! headers, and writes each published payload, encoded once, to every socket.
//! No routing, no matching, no history: what no hub on this machine can beat.

use std::net::SocketAddr;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;

/// Serves until killed.
pub(crate) async fn run(listen: SocketAddr, queue: usize) -> std::io::Result<()> {
    let listener = TcpListener::bind(listen).await?;
    println!("floor listening on {}", listener.local_addr()?);
    let (tx, _) = broadcast::channel::<Bytes>(queue);
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        tokio::spawn(connection(stream, tx.clone()));
    }
}

async fn connection(mut stream: TcpStream, tx: broadcast::Sender<Bytes>) {
    let mut buf = Vec::with_capacity(1024);
    let mut next_id = 0u64;
    loop {
        let Some(end) = read_until_head_end(&mut stream, &mut buf).await else {
            return;
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        buf.drain(..end + 4);
        if head.starts_with("GET") {
            return subscriber(stream, tx.subscribe()).await;
        }
        let length: usize = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .strip_prefix("content-length:")
                    .map(|v| v.trim().to_string())
            })
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < length {
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        next_id += 1;
        let mut frame = format!("id: {next_id}\ndata: ").into_bytes();
        frame.extend_from_slice(&body);
        frame.extend_from_slice(b"\n\n");
        let _ = tx.send(Bytes::from(frame));
        if stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
            .await
            .is_err()
        {
            return;
        }
    }
}

async fn read_until_head_end(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<usize> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            return Some(end);
        }
        let mut chunk = [0u8; 4096];
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn subscriber(mut stream: TcpStream, mut rx: broadcast::Receiver<Bytes>) {
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n:\n\n";
    if stream.write_all(head).await.is_err() {
        return;
    }
    // Closed or lagged: the connection ends, like a hub dropping a slow reader.
    while let Ok(frame) = rx.recv().await {
        if stream.write_all(&frame).await.is_err() {
            return;
        }
    }
}

//! udpmany ADDR FIRST_PORT N SECONDS: binds N UDP sockets (FIRST_PORT..), echoes every datagram on
//! each from its own tokio task, and prints how many it echoed after SECONDS.
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let addr: std::net::IpAddr = a[1].parse().unwrap();
    let first: u16 = a[2].parse().unwrap();
    let n: u16 = a[3].parse().unwrap();
    let secs: u64 = a[4].parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let echoed = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        for p in first..first + n {
            let s = tokio::net::UdpSocket::bind((addr, p)).await.unwrap();
            let echoed = echoed.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 1500];
                loop {
                    if let Ok((len, peer)) = s.recv_from(&mut buf).await {
                        if s.send_to(&buf[..len], peer).await.is_ok() {
                            echoed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            });
        }
        println!("ready: {n} sockets");
        tokio::time::sleep(std::time::Duration::from_secs(secs)).await;
    });
    println!("echoed {}", echoed.load(Ordering::Relaxed));
    std::process::exit(0);
}

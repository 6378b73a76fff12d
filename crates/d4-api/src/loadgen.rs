//! The open-loop HTTP load the lookup benchmarks drive (`pdns-bench load`,
//! `tls-bench load`): GETs at a fixed total rate over keep-alive
//! connections, latency counted from each request's scheduled time (so a
//! stall is not hidden), then p50/p90/p99/max.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One keep-alive GET; returns the status when the whole body is read.
pub fn get(r: &mut BufReader<TcpStream>, host: &str, path: &str) -> std::io::Result<u16> {
    write!(
        r.get_mut(),
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n"
    )?;
    let mut line = String::new();
    r.read_line(&mut line)?;
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        r.read_line(&mut line)?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some(v) = line
            .to_ascii_lowercase()
            .strip_prefix("content-length:")
            .map(|v| v.trim().to_string())
        {
            len = v.parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; len.min(64 << 20)];
    r.read_exact(&mut body)?;
    Ok(status)
}

/// A 64-bit mix (splitmix's finaliser): pseudo-random keys from counters.
pub fn mix(mut x: u64) -> u64 {
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^ (x >> 33)
}

/// GETs `path(i)` for i = 0, 1, ... against `base` (`http://host:port`) at
/// `rate` requests/s in all for `secs` seconds over `conns` connections;
/// prints the latency quantiles. Answers other than 200 count as errors.
pub fn run(
    base: &str,
    rate: f64,
    secs: f64,
    conns: usize,
    path: impl Fn(u64) -> String + Send + Sync + 'static,
) -> std::io::Result<()> {
    let host = base
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let conns = conns.max(1);
    let per = rate / conns as f64;
    let n = (per * secs) as u64;
    let start = Instant::now() + Duration::from_millis(200);
    let path = Arc::new(path);
    let handles: Vec<_> = (0..conns)
        .map(|c| {
            let host = host.clone();
            let path = path.clone();
            std::thread::spawn(move || -> std::io::Result<(Vec<(u64, u64)>, u64)> {
                let s = TcpStream::connect(&host)?;
                s.set_nodelay(true)?;
                let mut r = BufReader::new(s);
                let mut lat = Vec::with_capacity(n as usize);
                let mut errors = 0u64;
                for i in 0..n {
                    let due =
                        start + Duration::from_secs_f64((i as f64 + c as f64 / conns as f64) / per);
                    let now = Instant::now();
                    if due > now {
                        std::thread::sleep(due - now);
                    }
                    match get(&mut r, &host, &path(i * conns as u64 + c as u64)) {
                        Ok(200) => {}
                        _ => errors += 1,
                    }
                    lat.push((
                        due.elapsed().as_micros() as u64,
                        due.duration_since(start).as_millis() as u64,
                    ));
                }
                Ok((lat, errors))
            })
        })
        .collect();
    let mut all = Vec::new();
    let mut slow = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h
            .join()
            .map_err(|_| std::io::Error::other("a load thread panicked"))??;
        for (us, at) in l {
            all.push(us);
            if us >= 50_000 {
                slow.push(at);
            }
        }
        errors += e;
    }
    if all.is_empty() {
        return Err(std::io::Error::other("no request made"));
    }
    slow.sort_unstable();
    let took = start.elapsed().as_secs_f64();
    all.sort_unstable();
    let q = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "{} requests in {took:.1} s ({:.0}/s achieved, {rate:.0}/s asked), {errors} errors; latency ms: p50 {:.3} p90 {:.3} p99 {:.3} max {:.3}",
        all.len(),
        all.len() as f64 / took,
        q(0.5),
        q(0.9),
        q(0.99),
        q(1.0)
    );
    if let (Some(a), Some(b)) = (slow.first(), slow.last()) {
        println!(
            "{} requests over 50 ms, scheduled between {:.1} s and {:.1} s",
            slow.len(),
            *a as f64 / 1000.0,
            *b as f64 / 1000.0
        );
    }
    Ok(())
}

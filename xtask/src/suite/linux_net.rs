//! Linux's network beside the real-time tasks, both ways: on each NIC model `--nic` offers, a host
//! client fetches a file Linux serves through a forwarded port (`--forward`), and Linux fetches a
//! file the host serves; both checksummed, under deterministic time, the latency task missing
//! nothing.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::linux_guest::{sh, with_linux};
use super::{Ctx, Status, Test, hard_timeout};
use crate::console::ShellConsole;
use crate::qemu::{Net, NicModel};

pub(super) fn tests() -> Vec<Test> {
    tests![System: linux_network_both_ways]
}

/// Bytes each way per NIC.
const BLOB: usize = 1 << 20;

pub(crate) fn hex(d: &[u8]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// A free TCP port on the host's loopback (bound, then released for QEMU to take).
pub(super) fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free host port: {e}"))?;
    l.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// `BLOB` bytes of a xorshift sequence seeded by `seed`.
pub(crate) fn blob(seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..BLOB / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect()
}

/// Serves `body` once as an HTTP/1.0 response on `listener` (a thread); the request is not read
/// beyond its headers.
pub(crate) fn serve_once(listener: TcpListener, body: Vec<u8>) -> std::thread::JoinHandle<Result<(), String>> {
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().map_err(|e| format!("the host server accepted nothing: {e}"))?;
        s.set_read_timeout(Some(hard_timeout())).ok();
        let mut req = Vec::new();
        let mut b = [0u8; 512];
        while !req.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut b).map_err(|e| format!("reading the request: {e}"))?;
            if n == 0 {
                break;
            }
            req.extend_from_slice(&b[..n]);
        }
        let head = format!(
            "HTTP/1.0 200 OK\r\nContent-Length: {}\r\nContent-Type: application/octet-stream\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).and_then(|()| s.write_all(&body)).map_err(|e| format!("serving: {e}"))
    })
}

/// GET `path` from 127.0.0.1:`port` (HTTP/1.0); the body.
pub(crate) fn fetch(port: u16, path: &str) -> Result<Vec<u8>, String> {
    let mut s =
        TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connecting to the forwarded port: {e}"))?;
    s.set_read_timeout(Some(hard_timeout())).ok();
    s.write_all(format!("GET {path} HTTP/1.0\r\n\r\n").as_bytes()).map_err(|e| e.to_string())?;
    let mut all = Vec::new();
    s.read_to_end(&mut all).map_err(|e| format!("reading the response: {e}"))?;
    let at = all.windows(4).position(|w| w == b"\r\n\r\n").ok_or("no HTTP header in the response")?;
    let (head, body) = (String::from_utf8_lossy(&all[..at]).to_string(), all[at + 4..].to_vec());
    if !head.starts_with("HTTP/1.") || !head.contains(" 200") {
        return Err(format!("the server in Linux answered {head:?}"));
    }
    Ok(body)
}

/// The hash `sha256sum` printed for `file`.
pub(crate) fn guest_sha(out: &str, file: &str) -> Option<String> {
    out.lines().find(|l| l.trim_end().ends_with(file))?.split_whitespace().next().map(str::to_string)
}

/// Waits (up to 30 s of guest time) for eth0 to get QEMU user networking's 10.0.2.15 by DHCP, which
/// the initramfs's rcS runs in the background.
pub(crate) fn wait_for_dhcp(con: &mut ShellConsole) -> Result<(), String> {
    let ip = sh(
        con,
        "i=0; until ip -4 addr show eth0 | grep -q 10.0.2.15 || [ $i -ge 150 ]; do i=$((i+1)); sleep 0.2; done; \
         ip -4 addr show eth0 | grep inet",
    )?;
    if !ip.contains("10.0.2.15") {
        return Err(format!("eth0 got no address by DHCP: {ip:?}"));
    }
    Ok(())
}

/// One NIC: wait for DHCP, host ← Linux through the forwarded port, Linux ← host.
fn one_nic(ctx: &Ctx<'_>, elf: &Path, model: NicModel) -> Status {
    let host_port = match free_port() {
        Ok(p) => p,
        Err(e) => return Status::Fail(e),
    };
    let net = Net { model, forwards: vec![(host_port, 8080)] };
    let steps = |con: &mut ShellConsole, _c2: &Path| -> Result<(), String> {
        wait_for_dhcp(con)?;
        // Linux → host: Linux serves a file, the host fetches it through the forwarded port.
        let out = sh(
            con,
            &format!(
                "mkdir -p /tmp/www && head -c {BLOB} /dev/urandom > /tmp/www/blob && sha256sum /tmp/www/blob && \
                 httpd -p 8080 -h /tmp/www"
            ),
        )?;
        let want = guest_sha(&out, "/tmp/www/blob").ok_or_else(|| format!("no sha256sum line: {out:?}"))?;
        let got = fetch(host_port, "/blob")?;
        if got.len() != BLOB || hex(&Sha256::digest(&got)) != want {
            return Err(format!("the host fetched {} bytes that differ from Linux's file", got.len()));
        }
        // Host → Linux: the host serves a file, Linux fetches it from 10.0.2.2.
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let body = blob(u64::from(port));
        let want = hex(&Sha256::digest(&body));
        let server = serve_once(listener, body);
        let out = sh(con, &format!("wget -q -O /tmp/in http://10.0.2.2:{port}/blob && sha256sum /tmp/in"))?;
        server.join().map_err(|_| "the host server panicked".to_string())??;
        if guest_sha(&out, "/tmp/in").as_deref() != Some(want.as_str()) {
            return Err(format!("what Linux fetched from the host differs: {out:?}"));
        }
        // A report period more, so that the latency check covers the transfers.
        sh(con, "sleep 1")?;
        println!("    {}: {} KiB each way, checksums equal", model.name(), BLOB >> 10);
        Ok(())
    };
    with_linux(&ctx.dir_with(model.name()), elf, &[], &["-nic", &net.arg()], &steps)
}

/// Linux's network both ways on virtio-net (MSI-X), e1000e (MSI-X) and e1000 (an INTx line), under
/// deterministic time: a host client fetches 1 MiB Linux serves through a forwarded port, Linux
/// fetches 1 MiB the host serves, both compared by SHA-256; the latency task misses nothing.
fn linux_network_both_ways(ctx: &Ctx<'_>, elf: &Path, _iso: &Path) -> Status {
    for model in [NicModel::Virtio, NicModel::E1000e, NicModel::E1000] {
        match one_nic(ctx, elf, model) {
            Status::Pass => {}
            Status::Fail(e) => return Status::Fail(format!("{}: {e}", model.name())),
            other => return other,
        }
    }
    Status::Pass
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256sum_lines_are_read_by_file() {
        let out = "abc123  /tmp/www/blob\nother  /tmp/in\n";
        assert_eq!(guest_sha(out, "/tmp/www/blob").as_deref(), Some("abc123"));
        assert_eq!(guest_sha(out, "/tmp/in").as_deref(), Some("other"));
        assert_eq!(guest_sha(out, "/nope"), None);
        assert_eq!(blob(7).len(), BLOB);
        assert_ne!(blob(7), blob(9));
    }
}
